"""Detect and read the plates of one image: the stateless core shared by `edge read`, `edge bench` and the camera loop."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from edge.config import CameraConfig, ReaderBackend
from edge.types import Detection, PlateReading

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlateResult:
    detection: Detection
    reading: PlateReading | None  # None: found, but nothing legible (or not read: see `skipped`)
    skipped: bool = False  # not read because the caller already knows this plate (a settled track)


@dataclass
class ImagePipeline:
    """detect -> crop (undistorted, rectified) -> read, with per-stage timings of the last image."""

    detector: Any  # edge.detect.PlateDetector
    reader: Any  # edge.read.PlateReader
    calibration: Any = None  # edge.calibrate.file.Calibration
    last_timings_ms: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_config(
        cls,
        cfg: CameraConfig,
        *,
        reader_backend: str | None = None,
        reader_model: str | None = None,
        detector_model: str | None = None,
        calibration: Any = None,
    ) -> ImagePipeline:
        """Load the models a camera config names; the keyword arguments override it (bench compares backends)."""
        from edge.detect import load_detector
        from edge.read import load_reader

        overrides: dict[str, dict[str, Any]] = {"reader": {}, "detector": {}}
        if reader_backend is not None:
            overrides["reader"]["backend"] = ReaderBackend(reader_backend)
        if reader_model is not None:
            overrides["reader"]["model"] = reader_model
        if detector_model is not None:
            overrides["detector"]["model"] = detector_model
        if any(overrides.values()):
            cfg = cfg.with_overrides(**overrides)
        if calibration is None and cfg.camera.calibration is not None:
            from edge.calibrate.file import load_calibration

            path = cfg.resolve(cfg.camera.calibration)
            calibration = load_calibration(path)
            made_for = getattr(calibration, "camera_id", None)
            if made_for and made_for != cfg.camera.id:  # its ROI, lanes and speeds describe another view
                log.warning("camera %s: calibration %s was made for camera %r", cfg.camera.id, path, made_for)
        return cls(load_detector(cfg, calibration), load_reader(cfg), calibration)

    @property
    def models(self) -> dict[str, str]:
        return {**getattr(self.detector, "models", {}), **getattr(self.reader, "models", {})}

    @property
    def model_roles(self) -> dict[str, str]:
        """Role ("detector", "reader") -> "NAME@SHA256" (or the backend's name when it has no model file): what read records name."""
        roles: dict[str, str] = {}
        for role, stage in (("detector", self.detector), ("reader", self.reader)):
            files = list((getattr(stage, "models", None) or {}).items())  # one model file per stage
            roles[role] = f"{files[0][0]}@{files[0][1]}" if files else str(getattr(stage, "name", role))
        return roles

    def crop(self, image: np.ndarray, detection: Detection) -> np.ndarray:
        from edge.read import crop_plate

        cal = self.calibration
        if cal is not None and getattr(cal, "camera_matrix", None) is not None and detection.corners is None:
            from edge.calibrate.lens import undistort_patch

            return undistort_patch(cal, image, detection.box.as_list(), 0.1)
        return crop_plate(image, detection)

    def process(self, image: np.ndarray, skip: Callable[[Detection], bool] | None = None) -> list[PlateResult]:
        """Plates of one image, most confident first. `skip(detection)` True: located but not read."""
        from edge.detect import bgr8

        t0 = time.perf_counter()
        image = bgr8(image)  # grey, BGRA and 16-bit images are detected and cropped as 8-bit BGR
        detections = self.detector.detect(image)
        t1 = time.perf_counter()
        skipped = [skip is not None and skip(d) for d in detections]
        to_read = [d for d, s in zip(detections, skipped) if not s]
        readings = iter(self.reader.read([self.crop(image, d) for d in to_read]) if to_read else [])
        results = [PlateResult(d, None, True) if s else PlateResult(d, next(readings)) for d, s in zip(detections, skipped)]
        t2 = time.perf_counter()
        self.last_timings_ms = {"detect": (t1 - t0) * 1e3, "read": (t2 - t1) * 1e3}
        results.sort(key=lambda r: r.reading.confidence if r.reading else -1.0, reverse=True)
        return results
