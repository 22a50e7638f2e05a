from pathlib import Path

import numpy as np

from edge.motion import MotionGate

SAMPLE_FRAME = Path(__file__).parents[2] / "sample_frames" / "seq_day_rear" / "seq_day_rear_t0000.jpg"


def test_still_scene_is_gated_and_a_moving_object_is_not():
    rng = np.random.default_rng(0)
    scene = rng.integers(60, 200, (540, 960, 3), dtype=np.uint8)
    gate = MotionGate(threshold=0.002)
    assert gate.moved(scene)  # first frame
    noisy = np.clip(scene.astype(int) + rng.integers(-3, 4, scene.shape), 0, 255).astype(np.uint8)
    assert not gate.moved(noisy)
    car = scene.copy()
    car[200:300, 400:560] = 20
    assert gate.moved(car)
    assert not gate.moved(car)


def test_lighting_that_steps_over_the_whole_scene_is_not_motion_but_a_vehicle_still_is():
    """LED street lights beating with the shutter, or auto-exposure, shift every pixel at once: the gate let every
    such frame through to detection, so on a flickering night scene it saved nothing."""
    rng = np.random.default_rng(1)
    scene = rng.integers(60, 200, (540, 960, 3), dtype=np.uint8)
    gate = MotionGate(threshold=0.002)
    assert gate.moved(scene)
    for step in (20, -20, 35):
        assert not gate.moved(np.clip(scene.astype(int) + step, 0, 255).astype(np.uint8)), f"a step of {step} grey levels"
    car = np.clip(scene.astype(int) + 20, 0, 255).astype(np.uint8)  # under the brighter light
    car[200:300, 400:560] = 20
    assert gate.moved(car)


def test_heavy_sensor_noise_and_jpeg_on_a_1080p_frame_is_not_motion():
    """The thumbnail averages a sample of each cell, not every pixel (2 ms a frame less); the sample must still be
    large enough to smooth a noisy night sensor: with one pixel per cell this noise looked like motion."""
    import cv2

    frame = cv2.imread(str(SAMPLE_FRAME))
    assert frame is not None and frame.shape == (1080, 1920, 3)
    gate = MotionGate(threshold=0.002)
    assert gate.moved(frame)
    rng = np.random.default_rng(2)
    for _ in range(3):
        noisy = np.clip(frame + rng.normal(0, 24, frame.shape), 0, 255).astype(np.uint8)
        noisy = cv2.imdecode(cv2.imencode(".jpg", noisy, [cv2.IMWRITE_JPEG_QUALITY, 70])[1], cv2.IMREAD_COLOR)
        assert not gate.moved(noisy)
    car = frame.copy()
    car[700:800, 900:1060] = 20  # a dark car roof entering the road
    assert gate.moved(car)
