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
