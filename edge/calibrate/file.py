"""One camera's calibration file: lens, scene, plate size and confidence, in TOML.

Each `edge calibrate` subcommand fills one section and leaves the others as they
were, so a site can redo the scene after a camera is knocked without redoing the
lens. Every section records the command that made it (`made_by`) and the writer
puts a comment above it saying what the runtime uses it for.

Layout:

    camera_id = "demo"
    image_size = [1280, 720]          # the frame size everything below is in
    [lens]        camera_matrix, dist_coeffs, reprojection_rms
    [scene]       roi, travel_direction, homography, [[scene.lanes]] name + polygon
    [plate_size]  width_px = [min, max]
    [confidence]  x_knots, y_knots    (monotone map raw score -> P(read exactly right))

`load_calibration` validates with pydantic and raises ConfigError naming the file,
the key, the value and what is allowed.
"""

from __future__ import annotations

import hashlib
import math
import re
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from edge.config import CAMERA_ID_RULE, check_camera_id, format_validation_errors, read_toml, repeated
from edge.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DIRECTIONS = ("towards", "away", "left", "right")
SECTIONS = ("lens", "scene", "plate_size", "confidence")

Point = tuple[float, float]


@dataclass(frozen=True)
class Lane:
    name: str
    polygon: tuple[Point, ...]


@dataclass(frozen=True, eq=False)  # eq=False: numpy fields make == ambiguous
class Calibration:
    camera_id: str | None = None
    image_size: tuple[int, int] | None = None  # (width, height) the calibration was made at
    camera_matrix: np.ndarray | None = None  # 3x3
    dist_coeffs: np.ndarray | None = None  # (k1, k2, p1, p2, k3)
    reprojection_rms: float | None = None  # pixels
    roi: tuple[Point, ...] | None = None  # polygon, frame pixels
    lanes: tuple[Lane, ...] = ()
    travel_direction: str | None = None  # "towards" | "away" | "left" | "right": the expected direction
    homography: np.ndarray | None = None  # 3x3, image pixels -> road plane metres
    plate_width_px: tuple[float, float] | None = None  # (min, max)
    confidence_knots: tuple[tuple[float, ...], tuple[float, ...]] | None = None  # (x knots, y knots)
    # section name -> the command that produced it; written as `made_by` in that section.
    made_by: dict[str, str] = field(default_factory=dict)
    # Where it was loaded from and the file's SHA-256, so a read can say which calibration was in force.
    file: str | None = None
    sha256: str | None = None

    def has(self, section: str) -> bool:
        """Whether this calibration carries anything for `section` (one of SECTIONS)."""
        values = [getattr(self, name) for name in _SECTION_FIELDS[section]]
        return any(v is not None and not (isinstance(v, tuple) and len(v) == 0) for v in values)


_SECTION_FIELDS = {
    "lens": ("camera_matrix", "dist_coeffs", "reprojection_rms"),
    "scene": ("roi", "lanes", "travel_direction", "homography"),
    "plate_size": ("plate_width_px",),
    "confidence": ("confidence_knots",),
}

_SECTION_COMMENTS = {
    "lens": (
        "Lens: pinhole camera matrix [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] in pixels and OpenCV distortion",
        "(k1, k2, p1, p2, k3), fitted to checkerboard photos by `edge calibrate lens`. The runtime undistorts",
        "plate crops (never whole frames) with them. reprojection_rms: fit residual in pixels (< 0.5 is good).",
    ),
    "scene": (
        "Scene: set by hand on a frame with `edge calibrate scene`. roi: polygon (frame pixels) outside which",
        "nothing is detected; lanes: named polygons; travel_direction: the expected direction of traffic;",
        "homography: 3x3 map from frame pixels to road-plane metres, from four points of known position,",
        "used to estimate speed.",
    ),
    "plate_size": (
        "Plate size: range of plate widths in pixels, fitted by `edge calibrate plate-size` from detections",
        "on sample frames. Boxes outside it are rejected; it also picks the detection scale.",
    ),
    "confidence": (
        "Confidence: monotone (isotonic) map from the reader's raw score to the probability that the read",
        "is exactly right, fitted by `edge calibrate confidence` on a labelled folder. Published confidences",
        "go through it; linear between knots, flat beyond the ends.",
    ),
}


# ---------------------------------------------------------------- validation


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _crossing_edges(points: list[list[float]]) -> tuple[int, int] | None:
    """The first two edges of a closed polygon that cross each other (by the index of their first point), or None."""

    def side(a, b, c) -> float:
        return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])

    n = len(points)
    for i in range(n):
        a, b = points[i], points[(i + 1) % n]
        for j in range(i + 2, n - (i == 0)):  # edges that share no point with edge i
            c, d = points[j], points[(j + 1) % n]
            if side(a, b, c) * side(a, b, d) < 0 and side(c, d, a) * side(c, d, b) < 0:
                return i, j
    return None


def _check_polygon(points: list[list[float]], what: str) -> list[list[float]]:
    if len(points) < 3:
        raise ValueError(f"{what} needs at least 3 points [x, y], got {len(points)}")
    for p in points:
        if len(p) != 2:
            raise ValueError(f"{what} points are [x, y] pairs, got {p!r}")
        if not all(math.isfinite(v) for v in p):
            raise ValueError(f"{what} point {p!r} is not finite")
    crossing = _crossing_edges(points)
    if crossing:
        raise ValueError(
            f"{what} crosses itself (the edges from point {crossing[0] + 1} and from point {crossing[1] + 1} cross): "
            "give the points in order around the area"
        )
    xy = np.asarray(points, dtype=float)
    area = 0.5 * abs(np.dot(xy[:, 0], np.roll(xy[:, 1], 1)) - np.dot(xy[:, 1], np.roll(xy[:, 0], 1)))
    if area < 1.0:
        raise ValueError(f"{what} encloses no area (points in a line or repeated)")
    return points


def _check_matrix3(m: list[list[float]], what: str) -> list[list[float]]:
    if len(m) != 3 or any(len(row) != 3 for row in m):
        raise ValueError(f"{what} must be a 3x3 matrix (three rows of three numbers)")
    if not all(math.isfinite(v) for row in m for v in row):
        raise ValueError(f"{what} holds a non-finite number")
    return m


class _LensModel(_Strict):
    made_by: str | None = None
    camera_matrix: list[list[float]] = Field(description="[[fx, 0, cx], [0, fy, cy], [0, 0, 1]], pixels")
    dist_coeffs: list[float] = Field(description="k1, k2, p1, p2, k3")
    reprojection_rms: float | None = Field(None, ge=0, description="fit residual, pixels")

    @field_validator("camera_matrix")
    @classmethod
    def _k(cls, m: list[list[float]]) -> list[list[float]]:
        _check_matrix3(m, "camera_matrix")
        if m[0][0] <= 0 or m[1][1] <= 0:
            raise ValueError(f"focal lengths fx = m[0][0] and fy = m[1][1] must be positive, got {m[0][0]}, {m[1][1]}")
        if m[2] != [0.0, 0.0, 1.0] or m[1][0] != 0.0:
            raise ValueError("a camera matrix's last row is [0, 0, 1] and m[1][0] is 0")
        if m[0][2] <= 0 or m[1][2] <= 0:
            raise ValueError(f"principal point cx = m[0][2], cy = m[1][2] must be positive, got {m[0][2]}, {m[1][2]}")
        return m

    @field_validator("dist_coeffs")
    @classmethod
    def _d(cls, d: list[float]) -> list[float]:
        if len(d) != 5:
            raise ValueError(f"dist_coeffs are 5 numbers (k1, k2, p1, p2, k3), got {len(d)}")
        if not all(math.isfinite(v) and abs(v) < 1e3 for v in d):
            raise ValueError("dist_coeffs must be finite and of sensible size (|value| < 1000)")
        return d


class _LaneModel(_Strict):
    name: str = Field(min_length=1, max_length=32, description="lane name carried in reads")
    polygon: list[list[float]]

    @field_validator("polygon")
    @classmethod
    def _poly(cls, v: list[list[float]]) -> list[list[float]]:
        return _check_polygon(v, "lane polygon")


class _SceneModel(_Strict):
    made_by: str | None = None
    roi: list[list[float]] | None = None
    lanes: list[_LaneModel] = []
    travel_direction: Literal["towards", "away", "left", "right"] | None = None
    homography: list[list[float]] | None = None

    @field_validator("roi")
    @classmethod
    def _roi(cls, v: list[list[float]] | None) -> list[list[float]] | None:
        return None if v is None else _check_polygon(v, "roi")

    @field_validator("homography")
    @classmethod
    def _h(cls, v: list[list[float]] | None) -> list[list[float]] | None:
        if v is None:
            return None
        _check_matrix3(v, "homography")
        if abs(np.linalg.det(np.asarray(v))) < 1e-12:
            raise ValueError("homography is singular (determinant 0): the four road points were collinear?")
        return v

    @field_validator("lanes")
    @classmethod
    def _unique(cls, v: list[_LaneModel]) -> list[_LaneModel]:
        dupes = repeated([lane.name for lane in v])
        if dupes:
            raise ValueError(f"lane names must be unique, repeated: {', '.join(dupes)}")
        return v


class _PlateSizeModel(_Strict):
    made_by: str | None = None
    width_px: list[float] = Field(description="[min, max] plate width, pixels")

    @field_validator("width_px")
    @classmethod
    def _range(cls, v: list[float]) -> list[float]:
        if len(v) != 2 or not (0 < v[0] < v[1]) or not all(math.isfinite(x) for x in v):
            raise ValueError(f"width_px is [min, max] with 0 < min < max, got {v!r}")
        return v


class _ConfidenceModel(_Strict):
    made_by: str | None = None
    x_knots: list[float] = Field(description="raw scores, increasing")
    y_knots: list[float] = Field(description="calibrated probabilities, non-decreasing, in [0, 1]")

    @field_validator("x_knots")
    @classmethod
    def _x(cls, x: list[float]) -> list[float]:
        if not all(math.isfinite(v) for v in x):
            raise ValueError(f"x_knots must be finite numbers, got {x!r}")
        if any(b <= a for a, b in zip(x, x[1:])):
            raise ValueError("x_knots must be strictly increasing")
        return x

    @field_validator("y_knots")
    @classmethod
    def _y(cls, y: list[float]) -> list[float]:
        if any(b < a for a, b in zip(y, y[1:])):
            raise ValueError("y_knots must not decrease (the map is monotone)")
        if any(not (0.0 <= v <= 1.0) for v in y):
            raise ValueError("y_knots are probabilities in [0, 1]")
        return y

    @model_validator(mode="after")
    def _pairs(self) -> _ConfidenceModel:
        if len(self.x_knots) != len(self.y_knots) or len(self.x_knots) < 2:
            raise ValueError(
                f"x_knots and y_knots need the same length, at least 2 (got {len(self.x_knots)} and {len(self.y_knots)})"
            )
        return self


class _FileModel(_Strict):
    camera_id: str | None = Field(None, description=CAMERA_ID_RULE)
    image_size: list[int] | None = Field(None, description="[width, height] of the frames calibrated")
    lens: _LensModel | None = None
    scene: _SceneModel | None = None
    plate_size: _PlateSizeModel | None = None
    confidence: _ConfidenceModel | None = None

    @field_validator("camera_id")
    @classmethod
    def _id(cls, v: str | None) -> str | None:
        return None if v is None else check_camera_id(v)

    @field_validator("image_size")
    @classmethod
    def _size(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (len(v) != 2 or not all(16 <= s <= 16384 for s in v)):
            raise ValueError(f"image_size is [width, height], each 16 to 16384 pixels, got {v!r}")
        return v

    @model_validator(mode="after")
    def _inside_image(self) -> _FileModel:
        # A principal point or polygon far outside the frame means the file was made for another resolution.
        if self.image_size is None:
            return self
        w, h = self.image_size
        if self.lens is not None:
            cx, cy = self.lens.camera_matrix[0][2], self.lens.camera_matrix[1][2]
            if not (0 < cx < w and 0 < cy < h):
                raise ValueError(f"lens.camera_matrix principal point ({cx}, {cy}) lies outside image_size {w}x{h}")
        if self.scene is not None:
            polys = [("scene.roi", self.scene.roi)] + [(f"scene.lanes '{ln.name}'", ln.polygon) for ln in self.scene.lanes]
            for what, poly in polys:
                for x, y in poly or ():
                    if not (-0.05 * w <= x <= 1.05 * w and -0.05 * h <= y <= 1.05 * h):
                        raise ValueError(f"{what} point [{x}, {y}] lies outside image_size {w}x{h}")
        return self


# ---------------------------------------------------------------- load


def _points(poly: list[list[float]]) -> tuple[Point, ...]:
    return tuple((float(x), float(y)) for x, y in poly)


def load_calibration(path: str | Path) -> Calibration:
    """The validated calibration in `path`; ConfigError names the file, key, value and what is allowed."""
    path = Path(path)
    try:
        m = _FileModel.model_validate(read_toml(path, "calibration file"))
    except ValidationError as err:
        raise ConfigError(format_validation_errors(err, str(path), "calibration file")) from None
    made_by = {s: getattr(m, s).made_by for s in SECTIONS if getattr(m, s) is not None and getattr(m, s).made_by}
    cal = Calibration(
        camera_id=m.camera_id,
        image_size=tuple(m.image_size) if m.image_size else None,
        made_by=made_by,
        file=path.name,
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
    )
    if m.lens:
        cal = replace(
            cal,
            camera_matrix=np.asarray(m.lens.camera_matrix, dtype=np.float64),
            dist_coeffs=np.asarray(m.lens.dist_coeffs, dtype=np.float64),
            reprojection_rms=m.lens.reprojection_rms,
        )
    if m.scene:
        cal = replace(
            cal,
            roi=_points(m.scene.roi) if m.scene.roi else None,
            lanes=tuple(Lane(ln.name, _points(ln.polygon)) for ln in m.scene.lanes),
            travel_direction=m.scene.travel_direction,
            homography=np.asarray(m.scene.homography, dtype=np.float64) if m.scene.homography else None,
        )
    if m.plate_size:
        cal = replace(cal, plate_width_px=(m.plate_size.width_px[0], m.plate_size.width_px[1]))
    if m.confidence:
        cal = replace(cal, confidence_knots=(tuple(m.confidence.x_knots), tuple(m.confidence.y_knots)))
    return cal


def scaled_to(cal: Calibration, size: tuple[int, int]) -> Calibration:
    """The calibration for frames of `size` (width, height) when it was made at another resolution.

    Every pixel quantity scales: the camera matrix's rows, the ROI and lane polygons, the
    plate widths, and the homography's pixel side (road metres stay metres). Distortion
    coefficients act on normalised coordinates and do not change. Without an image_size,
    or at the same size, `cal` is returned as it is.
    """
    if cal.image_size is None or tuple(size) == tuple(cal.image_size):
        return cal
    sx, sy = size[0] / cal.image_size[0], size[1] / cal.image_size[1]

    def poly(points: tuple[Point, ...]) -> tuple[Point, ...]:
        return tuple((x * sx, y * sy) for x, y in points)

    k = None if cal.camera_matrix is None else np.diag([sx, sy, 1.0]) @ cal.camera_matrix
    h = None if cal.homography is None else cal.homography @ np.diag([1 / sx, 1 / sy, 1.0])
    widths = None if cal.plate_width_px is None else (cal.plate_width_px[0] * sx, cal.plate_width_px[1] * sx)
    return replace(
        cal,
        image_size=(int(size[0]), int(size[1])),
        camera_matrix=k,
        homography=h,
        roi=poly(cal.roi) if cal.roi else cal.roi,
        lanes=tuple(Lane(ln.name, poly(ln.polygon)) for ln in cal.lanes),
        plate_width_px=widths,
    )


def is_calibration_file(path: str | Path) -> bool:
    """Whether a TOML file is a calibration file (only calibration keys at the top), not a camera file."""
    try:
        with open(path, "rb") as f:
            keys = set(tomllib.load(f))
    except (OSError, ValueError):  # TOMLDecodeError, UnicodeDecodeError: not TOML at all
        return False
    return bool(keys) and keys <= set(_FileModel.model_fields)


def load_or_empty(path: str | Path) -> Calibration:
    """The calibration in `path`, or an empty one when the file does not exist yet."""
    path = Path(path)
    return load_calibration(path) if path.exists() else Calibration()


# ---------------------------------------------------------------- save


def _toml_value(v: Any) -> str:
    """TOML for the few types a calibration holds: str, bool, int, float, and (nested) lists of them."""
    if isinstance(v, np.ndarray):
        v = v.tolist()
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if not math.isfinite(f):
            raise ValueError(f"cannot write non-finite number {f} to a calibration file")
        return repr(f)  # shortest text that reads back to the same double
    if isinstance(v, str):
        # A file name that is not UTF-8 (in made_by) holds lone surrogates no UTF-8 file can hold: write its bytes as \xNN.
        v = v.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        escaped = v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
        # TOML forbids the other control characters in strings (a '\r' from a CRLF script, say): escape them too.
        escaped = re.sub(r"[\x00-\x1f\x7f]", lambda m: f"\\u{ord(m.group()):04x}", escaped)
        return f'"{escaped}"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to a calibration file")


def _section_tables(cal: Calibration) -> dict[str, dict[str, Any]]:
    """Plain key/values per section, only for the sections `cal` carries."""
    out: dict[str, dict[str, Any]] = {}
    if cal.has("lens"):
        out["lens"] = {
            "camera_matrix": cal.camera_matrix,
            "dist_coeffs": np.asarray(cal.dist_coeffs, dtype=float).ravel(),
            "reprojection_rms": cal.reprojection_rms,
        }
    if cal.has("scene"):
        out["scene"] = {
            "roi": [list(p) for p in cal.roi] if cal.roi else None,
            "travel_direction": cal.travel_direction,
            "homography": cal.homography,
            "lanes": [{"name": ln.name, "polygon": [list(p) for p in ln.polygon]} for ln in cal.lanes],
        }
    if cal.has("plate_size"):
        out["plate_size"] = {"width_px": list(cal.plate_width_px)}
    if cal.has("confidence"):
        out["confidence"] = {"x_knots": list(cal.confidence_knots[0]), "y_knots": list(cal.confidence_knots[1])}
    return out


def dumps_calibration(cal: Calibration) -> str:
    """The TOML text of `cal`, with a comment above each section saying what it is and what made it."""
    lines = [
        "# Camera calibration for the edge ANPR engine. Made by `edge calibrate` (see calibration/README.md);",
        "# check it with `edge validate-config CAMERA.toml`. Everything is in pixels of image_size frames.",
    ]
    if cal.camera_id is not None:
        lines.append(f"camera_id = {_toml_value(cal.camera_id)}")
    if cal.image_size is not None:
        lines.append(f"image_size = {_toml_value(list(cal.image_size))}")
    for section, table in _section_tables(cal).items():
        lines.append("")
        lines.extend(f"# {c}" for c in _SECTION_COMMENTS[section])
        lines.append(f"[{section}]")
        if cal.made_by.get(section):
            lines.append(f"made_by = {_toml_value(cal.made_by[section])}")
        subtables = []
        for key, value in table.items():
            if key == "lanes":
                subtables = value
            elif value is not None:
                lines.append(f"{key} = {_toml_value(value)}")
        for lane in subtables:
            lines.append("")
            lines.append(f"[[{section}.lanes]]")
            lines.extend(f"{k} = {_toml_value(v)}" for k, v in lane.items())
    return "\n".join(lines) + "\n"


def merge(old: Calibration, new: Calibration) -> Calibration:
    """`new`, with every section it leaves empty taken from `old` (and camera id / image size likewise)."""
    out = new
    for section, names in _SECTION_FIELDS.items():
        if not new.has(section) and old.has(section):
            out = replace(out, **{n: getattr(old, n) for n in names})
            if section in old.made_by:
                out = replace(out, made_by={**out.made_by, section: old.made_by[section]})
    if out.camera_id is None:
        out = replace(out, camera_id=old.camera_id)
    if out.image_size is None:
        out = replace(out, image_size=old.image_size)
    return out


def save_calibration(cal: Calibration, path: str | Path, *, merge_existing: bool = True) -> None:
    """Write `cal` to `path` as TOML. Sections `cal` leaves empty keep what the file already held.

    The text is checked by reading it back through the validator before the file is
    replaced (atomically), so a bad calibration never reaches disk.
    """
    path = Path(path)
    if merge_existing and path.exists():
        cal = merge(load_calibration(path), cal)
    text = dumps_calibration(cal)
    try:
        _FileModel.model_validate(tomllib.loads(text))
    except ValidationError as err:
        raise ConfigError(format_validation_errors(err, f"{path} (not written)", "calibration file")) from None
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text)
        tmp.replace(path)
    except OSError as err:
        try:  # a disk that filled mid-write leaves a cut-off copy beside the (untouched) file: not worth keeping
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise ConfigError(f"{path}: cannot write: {err.strerror or err}") from None


def provenance(command: str) -> str:
    """What goes in a section's `made_by`: the command and the engine version.

    No timestamp, so regenerating a file from the same inputs gives the same bytes.
    """
    from edge import __version__

    return f"{command} (edge {__version__})"


__all__ = [
    "Calibration",
    "Lane",
    "DIRECTIONS",
    "SECTIONS",
    "load_calibration",
    "load_or_empty",
    "is_calibration_file",
    "save_calibration",
    "dumps_calibration",
    "merge",
    "provenance",
    "scaled_to",
]
