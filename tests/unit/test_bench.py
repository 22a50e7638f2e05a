"""edge.bench metrics on hand-made cases, the HTML report, and the sample frame generator's determinism."""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import io
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from edge.bench import (
    BenchResult,
    Progress,
    accuracy,
    align,
    char_errors,
    height_bin,
    match_image,
    pass_accuracy,
    run_bench,
)
from edge.labels import LabelledPlate
from edge.pipeline import PlateResult
from edge.report import write_report
from edge.types import Box, Detection, PlateReading

ROOT = Path(__file__).resolve().parents[2]


def reading(text: str) -> PlateReading:
    return PlateReading(text, 0.9, tuple([0.9] * len(text)), backend="stub")


def result(box: tuple[float, float, float, float], text: str | None) -> PlateResult:
    return PlateResult(Detection(Box(*box), 0.8), reading(text) if text is not None else None)


class StubPipeline:
    """Answers by the image's fill value, so results do not depend on call order (warm-up included)."""

    def __init__(self, answers: dict[int, list[PlateResult]], crop_reads: dict[int, str] | None = None) -> None:
        self.answers = answers
        self.crop_reads = crop_reads or {}
        self.last_timings_ms: dict[str, float] = {}
        self.reader = SimpleNamespace(read=self._read)
        self.models = {"stub": "1"}

    def process(self, image: np.ndarray) -> list[PlateResult]:
        self.last_timings_ms = {"detect": 1.0, "read": 0.5}
        return list(self.answers.get(int(image[0, 0, 0]), []))

    def _read(self, crops: list[np.ndarray]) -> list[PlateReading | None]:
        return [reading(self.crop_reads[int(c[0, 0, 0])]) if int(c[0, 0, 0]) in self.crop_reads else None for c in crops]


def make_folder(folder: Path, rows: list[tuple[str, int, str, tuple | None]], size: tuple[int, int] = (120, 160)) -> None:
    """rows: (image name, fill value, plate, box or None); images of `size` (height, width)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "plate", "x", "y", "w", "h"])
        for name, fill, plate, box in rows:
            cv2.imwrite(str(folder / name), np.full((*size, 3), fill, np.uint8))
            w.writerow([name, plate, *(box if box else ("", "", "", ""))])


# Four images: exact read; one wrong character plus a false positive; a missed plate; a box-only label found.
CASE = [
    ("a.png", 10, "AB12CDE", (10, 10, 50, 12)),
    ("b.png", 20, "XY34ZZZ", (20, 20, 40, 10)),
    ("c.png", 30, "CD56EFG", (5, 5, 40, 10)),
    ("d.png", 40, "", (30, 30, 40, 20)),
]
ANSWERS = {
    10: [result((10, 10, 50, 12), "AB12CDE")],
    20: [result((21, 20, 40, 10), "XY34ZZ2"), result((100, 80, 40, 10), "FOO1")],
    30: [],
    40: [result((30, 31, 40, 20), "QQ"), result((200, 150, 30, 8), None)],
}


@pytest.fixture
def case(tmp_path: Path) -> BenchResult:
    make_folder(tmp_path / "case", CASE)
    return run_bench(tmp_path / "case", StubPipeline(ANSWERS), backend="stub")


def test_known_counts_give_known_figures(case: BenchResult) -> None:
    s = case.summary
    assert s["images"] == 4 and s["plates"] == 4
    assert s["det_recall"] == 0.75  # 3 of 4 boxes found
    assert s["det_precision"] == 0.6  # 3 of 5 detections are labelled plates
    assert s["false_pos_per_image"] == 0.5  # FOO1 and an illegible box
    assert s["false_reads_per_image"] == 0.25  # FOO1: the illegible box is not reported as a plate
    assert s["read_exact"] == pytest.approx(1 / 3, abs=1e-4)  # only AB12CDE of the three texts
    assert s["read_exact_detected"] == 0.5  # of the two texts that were found
    assert s["char_acc"] == pytest.approx(1 - 8 / 21, abs=1e-4)  # 1 wrong + 7 missed of 21 characters
    assert s["confusions"] == [{"truth": "Z", "read": "2", "count": 1}]


def test_summary_has_the_interface_keys_and_stage_times(case: BenchResult) -> None:
    s = case.summary
    for key in ("det_recall", "read_exact", "char_acc", "false_pos_per_image", "median_ms", "decode_median_ms",
                "ratio_to_decode", "fps", "peak_rss_mb"):
        assert key in s
    assert {"decode", "detect", "read", "total"} <= set(s["stages_ms"])
    assert s["stages_ms"]["detect"]["median"] == 1.0
    # end to end is measured around the stages (a stub's reported times are not its real ones), decode included
    assert all(im.timings_ms["total"] >= im.timings_ms["decode"] for im in case.images)
    json.dumps(s)  # all plain JSON


def test_by_height_bins_split_plates_by_label_height(case: BenchResult) -> None:
    rows = {b["height_px"]: b for b in case.summary["by_height"]}
    assert rows["0-11"]["plates"] == 2 and rows["0-11"]["det_recall"] == 0.5  # b found, c missed
    assert rows["12-15"]["plates"] == 1 and rows["12-15"]["read_exact"] == 1.0
    assert rows["20-24"]["plates"] == 1 and rows["20-24"]["det_recall"] == 1.0


def test_iou_below_half_is_a_miss_and_a_false_positive() -> None:
    labels = [LabelledPlate("AB12CDE", Box(0, 0, 100, 20))]
    plates, fps = match_image(labels, [result((60, 0, 100, 20), "AB12CDE")])  # IoU 40/160 = 0.25
    assert not plates[0].detected and len(fps) == 1
    plates, fps = match_image(labels, [result((10, 0, 100, 20), "AB12CDE")])  # IoU 90/110
    assert plates[0].detected and plates[0].read == "AB12CDE" and not fps


def test_one_detection_matches_one_label_only() -> None:
    labels = [LabelledPlate("A1", Box(0, 0, 100, 20)), LabelledPlate("B2", Box(5, 0, 100, 20))]
    plates, fps = match_image(labels, [result((4, 0, 100, 20), "B2")])
    assert [p.detected for p in plates] == [False, True]  # the better overlap wins
    assert not fps


def test_alignment_and_character_errors() -> None:
    assert align("AB12", "A812") == [("A", "A"), ("B", "8"), ("1", "1"), ("2", "2")]
    assert ("C", "") in align("ABC", "AB")
    assert char_errors("AB12CDE", "AB12CDE") == 0
    assert char_errors("AB12CDE", None) == 7
    assert char_errors("AB1", "XXXXXXXX") == 3  # capped at the truth's length


def test_fold_treats_listed_characters_as_equal() -> None:
    from edge.bench import ImageOutcome, PlateOutcome

    im = ImageOutcome("x.png", 10, 10, (PlateOutcome("AB0", [0, 0, 5, 5], True, "ABO"),), (), {})
    assert accuracy([im])["read_exact"] == 0.0
    assert accuracy([im], {"O": "0"})["read_exact"] == 1.0


def test_height_bins_are_named_by_range() -> None:
    assert height_bin(5) == "0-11" and height_bin(12) == "12-15" and height_bin(500) == "96+"


def test_crop_folders_are_read_whole(tmp_path: Path) -> None:
    make_folder(tmp_path / "crops", [("p.png", 50, "FUW999", None), ("q.png", 60, "ABC123", None)])
    res = run_bench(tmp_path / "crops", StubPipeline({}, crop_reads={50: "FUW999", 60: "A8C123"}))
    assert res.summary["mode"] == "crops"
    assert res.summary["read_exact"] == 0.5
    assert res.summary["char_acc"] == pytest.approx(11 / 12, abs=1e-4)
    assert res.summary["plates_with_box"] == 0 and res.summary["det_recall"] is None  # not measured, not zero


def test_scene_photos_labelled_with_text_only_are_detected_and_read(tmp_path: Path) -> None:
    # Photos (not crops) whose labels give the plate but no box: the reading that matches the text
    # counts, whatever its box; a misread plate is found-but-wrong, not a false positive.
    make_folder(tmp_path / "s", [("p.jpg", 50, "AB12CDE", None), ("q.jpg", 60, "XY34ZZZ", None)], size=(480, 640))
    answers = {50: [result((300, 200, 90, 20), "AB12CDE"), result((10, 10, 40, 10), "FOO1")],
               60: [result((100, 300, 90, 20), "XY34ZZ2")]}
    res = run_bench(tmp_path / "s", StubPipeline(answers, crop_reads={50: "NOPE", 60: "NOPE"}))
    s = res.summary
    assert s["mode"] == "scenes" and s["read_exact"] == 0.5 and s["char_acc"] == pytest.approx(13 / 14, abs=1e-4)
    assert s["false_pos_per_image"] == 0.5  # FOO1 only
    assert s["plates_with_box"] == 0 and s["det_recall"] is None  # detection is not measured without boxes


def test_one_read_per_vehicle_pass() -> None:
    meta = {"fps": 10, "passes": [{"plate": "BD51SMR"}, {"plate": "BD51SMB"}]}
    tracks = [SimpleNamespace(reading=reading(t)) for t in ("BD51SMR", "BD51SMB", "BD51SMB")]
    s = pass_accuracy(meta, tracks)
    assert s["passes_read_once"] == 1 and s["extra_tracks"] == 2 and s["pass_accuracy"] == 0.5


def test_sequence_folder_is_tracked(tmp_path: Path) -> None:
    from edge.config import TrackingSection

    folder = tmp_path / "seq"
    rows = [(f"seq_t{i:04d}.png", 10 + i, "AB12CDE", (10 + 5 * i, 10, 50, 12)) for i in range(4)]
    make_folder(folder, rows)
    (folder / "sequence.json").write_text(json.dumps({"fps": 10, "passes": [{"plate": "AB12CDE"}]}))
    answers = {10 + i: [result((10 + 5 * i, 10, 50, 12), "AB12CDE")] for i in range(4)}
    res = run_bench(folder, StubPipeline(answers), tracking=TrackingSection())
    assert res.summary["sequence"]["passes_read_once"] == 1
    assert "track" in res.summary["stages_ms"]


def test_decoding_ahead_on_a_thread_changes_no_figure(tmp_path: Path) -> None:
    make_folder(tmp_path / "case", CASE)
    plain = run_bench(tmp_path / "case", StubPipeline(ANSWERS))
    ahead = run_bench(tmp_path / "case", StubPipeline(ANSWERS), overlap=True)
    assert [im.plates for im in ahead.images] == [im.plates for im in plain.images]
    assert ahead.summary["overlap_decode"] and ahead.summary["char_acc"] == plain.summary["char_acc"]


def test_repeated_passes_add_timings_not_plates(tmp_path: Path) -> None:
    make_folder(tmp_path / "case", CASE)
    once = run_bench(tmp_path / "case", StubPipeline(ANSWERS))
    thrice = run_bench(tmp_path / "case", StubPipeline(ANSWERS), repeat=3)
    assert thrice.summary["plates"] == once.summary["plates"] and thrice.summary["det_recall"] == 0.75
    assert len(thrice.images) == 4 and thrice.summary["repeat"] == 3 and thrice.summary["timed_frames"] == 12


def test_result_survives_a_round_trip_through_json(case: BenchResult) -> None:
    again = BenchResult.from_dict(json.loads(json.dumps(case.to_dict())))
    assert again.summary == case.summary and again.images == case.images


def test_report_has_plots_and_a_thumbnail_per_miss(case: BenchResult, tmp_path: Path) -> None:
    index = write_report(tmp_path / "report", [case])
    text = index.read_text()
    assert text.count("<svg") == 2  # accuracy by height, latency histogram
    assert "http" not in text.replace("http://www.w3.org/2000/svg", "")  # nothing fetched from elsewhere
    thumbs = sorted((tmp_path / "report" / "misses" / "stub").glob("*.jpg"))
    assert len(thumbs) == 2  # b (read wrong) and c (not found); a is exact, d is a found box-only label
    assert all(f"misses/stub/{t.name}" in text for t in thumbs)
    assert cv2.imread(str(thumbs[0])) is not None


# ----------------------------------------------------------------------------- sample frames


def _load_generator():
    spec = importlib.util.spec_from_file_location("sample_generate", ROOT / "sample_frames" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_sample_frames_are_identical_for_a_seed_and_differ_across_seeds(tmp_path: Path) -> None:
    gen = _load_generator()
    sets = ("singles", "seq_day_rear")
    gen.generate(tmp_path / "one", seed=3, sets=sets, tiny=True)
    gen.generate(tmp_path / "two", seed=3, sets=sets, tiny=True)
    gen.generate(tmp_path / "other", seed=4, sets=("singles",), tiny=True)
    one = _digest(tmp_path / "one")
    assert one == _digest(tmp_path / "two")
    assert {k: v for k, v in one.items() if k.startswith("singles")} != _digest(tmp_path / "other")
    assert "seq_day_rear/sequence.json" in one and "singles/labels.csv" in one


def test_generated_labels_lie_inside_their_frames(tmp_path: Path) -> None:
    from edge.labels import load_labelled_folder

    gen = _load_generator()
    (folder,) = gen.generate(tmp_path, seed=5, sets=("seq_day_rear",), tiny=True)
    images = load_labelled_folder(folder)
    assert images
    meta = json.loads((folder / "sequence.json").read_text())
    assert {p["plate"] for p in meta["passes"]} <= {p.plate for im in images for p in im.plates}
    for im in images:
        h, w = cv2.imread(str(im.path)).shape[:2]
        for p in im.plates:
            assert p.plate and 0 <= p.box.x and p.box.x + p.box.w <= w and 0 <= p.box.y and p.box.y + p.box.h <= h


# ----------------------------------------------------------------------------- integrators' folders


@pytest.mark.parametrize("overlap", [False, True])
def test_an_empty_or_broken_image_is_an_error_of_that_image_not_of_the_run(tmp_path: Path, overlap: bool) -> None:
    folder = tmp_path / "case"
    make_folder(folder, CASE)
    (folder / "a.png").write_bytes(b"")  # zero bytes (a copy that failed), first: the warm-up image too
    (folder / "b.png").write_bytes(b"\x89PNG\r\n")  # truncated
    res = run_bench(folder, StubPipeline(ANSWERS), overlap=overlap)
    assert [im.error is not None for im in res.images] == [True, True, False, False]
    assert res.summary["errors"] == 2 and res.summary["images"] == 4 and res.summary["timed_frames"] == 2


def test_report_survives_a_label_box_outside_its_image(tmp_path: Path) -> None:
    # A phone photo labelled before its EXIF rotation was applied: the box lies beyond the decoded image.
    from edge.bench import ImageOutcome, PlateOutcome

    cv2.imwrite(str(tmp_path / "p.jpg"), np.full((300, 200, 3), 90, np.uint8))
    miss = PlateOutcome("AB12CDE", [400, 30, 40, 10], False, None)
    res = BenchResult("stub", str(tmp_path), {"split": "all", "mode": "scenes"},
                      [ImageOutcome(str(tmp_path / "p.jpg"), 200, 300, (miss,), (), {"total": 1.0})])
    write_report(tmp_path / "report", [res])
    (thumb,) = (tmp_path / "report" / "misses" / "stub").glob("*.jpg")
    assert cv2.imread(str(thumb)) is not None


def test_report_survives_an_image_name_that_is_not_utf8(tmp_path: Path) -> None:
    import os
    import subprocess

    from edge.bench import ImageOutcome, PlateOutcome

    raw = os.fsencode(tmp_path) + b"/caf\xe9.png"
    with open(raw, "wb") as f:
        f.write(cv2.imencode(".png", np.full((120, 160, 3), 90, np.uint8))[1].tobytes())
    miss = PlateOutcome("AB12CDE", [10, 10, 50, 12], False, None)
    res = BenchResult("stub", str(tmp_path), {"split": "all", "mode": "scenes"},
                      [ImageOutcome(os.fsdecode(raw), 160, 120, (miss,), (), {"total": 1.0})])
    (tmp_path / "result.json").write_text(json.dumps(res.to_dict()))
    # In a process of its own: cv2.imread on such a name is a segfault, which must fail this test, not end the run.
    code = ("import json, sys; from edge.bench import BenchResult; from edge.report import write_report; "
            "write_report(sys.argv[2], [BenchResult.from_dict(json.load(open(sys.argv[1])))])")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "result.json"), str(tmp_path / "report")],
                          cwd=ROOT, capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
    assert "caf" in (tmp_path / "report" / "index.html").read_text(encoding="utf-8")
    assert len(list((tmp_path / "report" / "misses" / "stub").glob("*.jpg"))) == 1


def test_a_plate_whose_box_is_unknown_is_not_counted_as_detected_in_a_scene(tmp_path: Path) -> None:
    # labels.csv may leave x,y,w,h empty when unknown; in a folder of scenes such a plate can match no detection.
    make_folder(tmp_path / "mixed", [("a.png", 10, "AB12CDE", (10, 10, 50, 12)), ("b.png", 20, "XY34ZZZ", None)])
    res = run_bench(tmp_path / "mixed", StubPipeline({10: [result((10, 10, 50, 12), "AB12CDE")]}))
    assert res.summary["mode"] == "scenes"
    assert res.summary["read_exact"] == 0.5  # of the two plates with text
    assert res.summary["read_exact_detected"] == 1.0  # of the one found: b's plate was never matched to a detection


def test_progress_reaches_the_end_with_repeats_and_unreadable_images(tmp_path: Path) -> None:
    make_folder(tmp_path / "case", CASE)
    (tmp_path / "case" / "d.png").write_bytes(b"")  # the last image cannot be decoded
    calls: list[tuple[int, int]] = []
    run_bench(tmp_path / "case", StubPipeline(ANSWERS), repeat=2, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (8, 8)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


def test_a_sequence_file_with_no_frame_rate_is_a_config_error(tmp_path: Path) -> None:
    from edge.config import TrackingSection
    from edge.errors import ConfigError

    make_folder(tmp_path / "seq", [("seq_t0001.png", 10, "AB12CDE", (10, 10, 50, 12))])
    (tmp_path / "seq" / "sequence.json").write_text(json.dumps({"fps": 0, "passes": []}))
    with pytest.raises(ConfigError, match="sequence.json"):
        run_bench(tmp_path / "seq", StubPipeline({}), tracking=TrackingSection())


def test_an_image_that_cannot_be_opened_is_an_error_of_that_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A file without read permission (copied from a camera as another user); faked, as tests may run as root.
    make_folder(tmp_path / "case", CASE)
    real_read_bytes = Path.read_bytes

    def read_bytes(path: Path) -> bytes:
        if path.name == "b.png":
            raise PermissionError(13, "Permission denied", str(path))
        return real_read_bytes(path)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    res = run_bench(tmp_path / "case", StubPipeline(ANSWERS))
    assert [im.error is not None for im in res.images] == [False, True, False, False]


def test_labels_on_blank_images_are_counted_apart(tmp_path: Path) -> None:
    # A dropped video frame (one value everywhere) keeps its interpolated labels in some datasets:
    # no engine can find those plates, and an integrator should see how many there were.
    make_folder(tmp_path / "case", CASE)
    for name, fill, _, _ in CASE[:3]:  # a, b and c get a little content; d stays blank
        img = np.full((120, 160, 3), fill, np.uint8)
        img[60:70, 60:70] = 255
        cv2.imwrite(str(tmp_path / "case" / name), img)
    s = run_bench(tmp_path / "case", StubPipeline(ANSWERS)).summary
    assert s["blank_images"] == 1
    assert s["det_recall"] == 0.75  # a, b and d found, c missed
    assert s["det_recall_visible"] == pytest.approx(2 / 3, abs=1e-4)  # d's label left out


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_rate_is_measured_between_updates_not_from_the_bars_creation(monkeypatch) -> None:
    clock = iter([100.0, 100.5, 101.0])
    monkeypatch.setattr("edge.bench.time.perf_counter", lambda: next(clock))
    out = _Tty()
    bar = Progress(9, "set", stream=out)  # made at the caller's first update, one image already done
    bar.update(1)
    assert "img/s" not in out.getvalue()  # no rate from a single point
    bar.update(3)
    assert out.getvalue().endswith("3/9   4.0 img/s")  # 2 images in 0.5 s
    bar.update(5)
    assert out.getvalue().endswith("5/9   4.0 img/s")


def test_images_the_labels_do_not_list_are_benched_as_frames_without_plates(tmp_path: Path) -> None:
    """labels.csv has one row per plate, so an empty-road frame has no row: it was skipped, and what the
    engine found on it never counted as a false positive."""
    make_folder(tmp_path / "f", [("a.png", 10, "AB12CDE", (10, 10, 50, 12))])
    cv2.imwrite(str(tmp_path / "f" / "b.png"), np.full((120, 160, 3), 20, np.uint8))  # no plate, no row
    cv2.imwrite(str(tmp_path / "f" / "c.png"), np.full((120, 160, 3), 30, np.uint8))
    (tmp_path / "f" / "notes.txt").write_text("not an image")
    answers = {10: [result((10, 10, 50, 12), "AB12CDE")], 20: [result((60, 60, 40, 10), "FOO1")], 30: []}
    s = run_bench(tmp_path / "f", StubPipeline(answers)).summary
    assert s["images"] == 3 and s["plates"] == 1
    assert s["det_recall"] == 1.0 and s["read_exact"] == 1.0
    assert s["false_pos_per_image"] == pytest.approx(1 / 3, abs=1e-4)  # FOO1 on the unlisted frame
