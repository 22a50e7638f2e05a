import numpy as np

from edge.motion import MotionGate


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


def test_at_the_highest_threshold_a_scene_that_changed_entirely_still_moves():
    """motion_threshold = 1 passes validation; it must not leave the camera blind after its first frame."""
    gate = MotionGate(threshold=1.0)
    dark, bright = np.full((540, 960, 3), 30, np.uint8), np.full((540, 960, 3), 220, np.uint8)
    assert gate.moved(dark)
    assert gate.moved(bright)
    assert not gate.moved(bright)
