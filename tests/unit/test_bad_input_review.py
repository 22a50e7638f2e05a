"""Bad input from an adversarial review: each gets one clear line naming the file, field or value, and loses nothing."""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.errors import ConfigError
from edge.labels import load_labelled_folder

HEADER = b"image,plate,x,y,w,h\n"


def _labelled(tmp_path: Path, rows: bytes) -> Path:
    cv2.imwrite(str(tmp_path / "a.jpg"), np.zeros((20, 40, 3), np.uint8))
    (tmp_path / "labels.csv").write_bytes(HEADER + rows)
    return tmp_path


# ---------------------------------------------------------------------------- labels.csv


@pytest.mark.parametrize(
    ("row", "message"),
    [
        # float() accepts these; a NaN box crashed `edge bench` with a traceback deep in the matching.
        (b"a.jpg,AB12CDE,nan,2,30,8\n", r"field 'x' = 'nan' is not a finite number"),
        (b"a.jpg,AB12CDE,inf,2,30,8\n", r"field 'x' = 'inf' is not a finite number"),
        (b"a.jpg,AB12CDE,-Infinity,2,30,8\n", r"field 'x' = '-Infinity' is not a finite number"),
        # These were boxes silently dropped (taken as unknown), not errors.
        (b"a.jpg,AB12CDE,100,2,-30,8\n", r"field 'w' = -30 is negative"),
        (b"a.jpg,AB12CDE,1,2,30,\n", r"box field\(s\) h empty"),
    ],
    ids=["nan", "inf", "-Infinity", "negative width", "field missing"],
)
def test_a_bad_box_is_an_error_named_with_its_line(tmp_path: Path, row: bytes, message: str) -> None:
    with pytest.raises(ConfigError, match=r"labels.csv:2: " + message):
        load_labelled_folder(_labelled(tmp_path, row))


def test_a_repeated_row_is_named_with_both_lines(tmp_path: Path) -> None:
    # Counted twice, the copy is a plate the engine can never find: recall would silently drop.
    folder = _labelled(tmp_path, b"a.jpg,AB12CDE,1,2,30,8\na.jpg,XY34ZZZ,50,2,30,8\na.jpg,AB12CDE,1,2,30,8\n")
    with pytest.raises(ConfigError, match=r"labels.csv:4: repeats line 2"):
        load_labelled_folder(folder)


def test_unknown_boxes_are_still_accepted(tmp_path: Path) -> None:
    folder = _labelled(tmp_path, b"a.jpg,AB12CDE,,,,\na.jpg,XY34ZZZ,1,2,0,8\n")
    (im,) = load_labelled_folder(folder)
    assert [(p.plate, p.box) for p in im.plates] == [("AB12CDE", None), ("XY34ZZZ", None)]


# ---------------------------------------------------------------------------- edge bench


def test_bench_names_each_unreadable_image_not_only_counts_it(tmp_path: Path, caplog) -> None:
    # The summary said "errors": 1 and the exit status was 1, but nothing said which image was at fault.
    from edge.bench import run_bench
    from tests.unit.test_bench import ANSWERS, CASE, StubPipeline, make_folder

    make_folder(tmp_path / "case", CASE)
    (tmp_path / "case" / "c.png").write_bytes(b"\x89PNG\r\n")  # truncated
    res = run_bench(tmp_path / "case", StubPipeline(ANSWERS), repeat=2)
    assert res.summary["errors"] == 1
    warned = [r.getMessage() for r in caplog.records if "c.png" in r.getMessage()]
    assert len(warned) == 1 and "not a readable image" in warned[0]  # once, not once per repeat


def _stub_bench(monkeypatch) -> None:
    """edge bench with a stand-in engine: no models load (it answers by image fill value)."""
    from tests.unit.test_bench import ANSWERS, StubPipeline

    monkeypatch.setattr("edge.cli.bench.pipeline_for", lambda cfg, backend: StubPipeline(ANSWERS))


@pytest.mark.parametrize("flag, value", [("--limit", "0"), ("--limit", "-1"), ("--repeat", "0"), ("--repeat", "x")])
def test_bench_refuses_a_count_below_one(tmp_path: Path, capsys, flag: str, value: str) -> None:
    # --limit -1 silently dropped the last image (images[:-1]); --limit 0 meant no limit; --repeat 0 meant 1.
    from edge.cli import main
    from tests.unit.test_bench import CASE, make_folder

    make_folder(tmp_path / "case", CASE)
    with pytest.raises(SystemExit) as exit_:
        main(["bench", str(tmp_path / "case"), flag, value])
    assert exit_.value.code == 2
    assert f"argument {flag}" in capsys.readouterr().err


def test_bench_refuses_a_report_folder_it_cannot_make_before_running(tmp_path: Path, capsys, monkeypatch) -> None:
    # It ran the whole folder first, then died with a FileExistsError traceback (exit 1) and printed no figures.
    from edge.cli import main
    from tests.unit.test_bench import CASE, make_folder

    make_folder(tmp_path / "case", CASE)
    (tmp_path / "taken").write_text("a file, not a folder")
    monkeypatch.setattr("edge.cli.bench.pipeline_for", lambda cfg, backend: pytest.fail("ran before checking --report"))
    assert main(["bench", str(tmp_path / "case"), "--report", str(tmp_path / "taken")]) == 2
    assert f"--report {tmp_path / 'taken'}: cannot create the folder" in capsys.readouterr().err


def test_bench_prints_its_figures_even_when_the_report_cannot_be_written(tmp_path: Path, capsys, monkeypatch) -> None:
    import errno
    import json

    from edge.cli import main
    from tests.unit.test_bench import CASE, make_folder

    make_folder(tmp_path / "case", CASE)
    _stub_bench(monkeypatch)
    real_write_bytes = Path.write_bytes

    def full_disk(self: Path, data: bytes) -> int:
        if self.suffix == ".jpg":
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real_write_bytes(self, data)

    monkeypatch.setattr(Path, "write_bytes", full_disk)
    assert main(["bench", str(tmp_path / "case"), "--json", "--report", str(tmp_path / "report")]) == 1
    out, err = capsys.readouterr()
    assert json.loads(out.strip().splitlines()[-1])["images"] == 4  # the figures are not lost
    assert "cannot write" in err and "misses" in err and "No space left on device" in err


def test_a_miss_thumbnail_that_cannot_be_written_is_an_error_not_a_broken_link(tmp_path: Path, monkeypatch) -> None:
    # cv2.imwrite returns False on a full disk: the report linked thumbnails that were never written.
    import errno

    from edge.bench import run_bench
    from edge.report import write_report
    from tests.unit.test_bench import ANSWERS, CASE, StubPipeline, make_folder

    make_folder(tmp_path / "case", CASE)
    res = run_bench(tmp_path / "case", StubPipeline(ANSWERS))
    monkeypatch.setattr(cv2, "imwrite", lambda *a, **k: False)
    monkeypatch.setattr(Path, "write_bytes", lambda self, data: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left on device", str(self))))
    with pytest.raises(OSError, match="misses"):
        write_report(tmp_path / "report", [res])


# ---------------------------------------------------------------------------- edge run


@pytest.mark.parametrize("value", ["nan", "inf", "-5", "soon"])
def test_run_refuses_a_flush_timeout_that_is_not_a_finite_number_of_seconds(tmp_path: Path, capsys, value: str) -> None:
    # NaN made Publisher.flush wait(min(nan, 0.2)) in a loop: a core at 100% for ever, deaf to SIGTERM.
    from edge.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["run", "--camera", "c1", "--source", str(tmp_path), "--once", "--flush-timeout", value])
    assert exit_.value.code == 2
    assert "argument --flush-timeout" in capsys.readouterr().err


@pytest.fixture
def _signal_handlers_kept():
    """`edge run` installs its SIGTERM/SIGINT/SIGHUP handlers first thing: give pytest its own back."""
    import signal

    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


@pytest.mark.usefixtures("_signal_handlers_kept")
@pytest.mark.parametrize("spool", ["a_file", "a_file/below"])
def test_run_names_a_spool_folder_it_cannot_use(tmp_path: Path, capsys, spool: str) -> None:
    # A spool path that is a file (or under one, or on a read-only disk) gave a NotADirectoryError traceback, exit 1.
    from edge.cli import main

    (tmp_path / "frames").mkdir()
    cv2.imwrite(str(tmp_path / "frames" / "f1.jpg"), np.zeros((48, 64, 3), np.uint8))
    (tmp_path / "a_file").write_text("not a folder")
    assert main(["run", "--camera", "c1", "--source", str(tmp_path / "frames"), "--spool", str(tmp_path / spool), "--once"]) == 2
    err = capsys.readouterr().err
    assert f"--spool = '{tmp_path / spool}': camera c1 cannot use {tmp_path / spool / 'c1'}: Not a directory" in err
    assert "Traceback" not in err


def test_a_source_with_no_readable_frame_is_logged_as_one_line_not_a_traceback(caplog) -> None:
    # A folder whose every image is corrupt: the SourceError naming it came with a traceback, as if a bug.
    import threading

    from edge.capture import CaptureStats
    from edge.config import TrackingSection
    from edge.errors import SourceError
    from edge.track import Tracker
    from tests.unit.test_camera_spool import camera_over

    class Source:
        name, live, stats = "frames/", False, CaptureStats()

        def frames(self):
            raise SourceError("frames/: none of its 2 image(s) could be read (see the warnings above)")
            yield

        def close(self):
            pass

    cam = camera_over(Source(), lambda f: None, Tracker(TrackingSection()), [])
    assert cam.run(threading.Event()) == 1
    (record,) = [r for r in caplog.records if "none of its 2 image(s)" in r.getMessage()]
    assert record.exc_info is None and record.levelname == "ERROR"


# ---------------------------------------------------------------------------- edge read


def test_read_on_a_folder_without_images_is_an_error_naming_it(tmp_path: Path, capsys, monkeypatch) -> None:
    # It printed nothing and exited 0, as if every image had been read.
    from edge.cli import main

    (tmp_path / "notes.txt").write_text("not an image")
    monkeypatch.setattr("edge.cli.read._Engine", lambda args: pytest.fail("models loaded for an empty folder"))
    assert main(["read", "--json", str(tmp_path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and f"{tmp_path}: no images in folder" in err


@pytest.mark.parametrize("config", [False, True])
def test_read_takes_a_model_path_with_a_folder_from_the_working_directory(tmp_path: Path, monkeypatch, config: bool) -> None:
    # `--model mine/reader.onnx` was looked for as models/mine/reader.onnx (or beside --config's file) and refused.
    import argparse

    from edge.cli.read import _Engine
    from edge.config import MODELS_DIR

    seen = []
    monkeypatch.setattr("edge.read.load_reader", lambda cfg: seen.append((cfg.model_path(cfg.reader.model), cfg.reader.model)))
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "cam.toml").write_text("[reader]\nmin_confidence = 0.5\n")
    monkeypatch.chdir(tmp_path)
    args = argparse.Namespace(config=Path("cfg/cam.toml") if config else None, backend=None, countries=None, crops=True,
                              model=Path("mine/reader.onnx"))
    _Engine(args)
    args.model = Path("reader_int8.onnx")
    _Engine(args)
    assert [s[0] for s in seen] == [tmp_path / "mine" / "reader.onnx", MODELS_DIR / "reader_int8.onnx"]


@pytest.mark.usefixtures("_signal_handlers_kept")
def test_run_names_the_config_file_and_key_of_a_source_that_cannot_be_opened(tmp_path: Path, capsys, monkeypatch) -> None:
    # "frames: no such folder, file, device or stream URL" named neither the file nor the key it came from, nor
    # that a relative path is looked for from the working directory, not beside the file.
    from edge.cli import main

    monkeypatch.delenv("EDGE_SOURCE", raising=False)
    (tmp_path / "cam.toml").write_text('[capture]\nsource = "frames"\n')
    monkeypatch.chdir(tmp_path.parent)
    assert main(["run", "--camera", "c1", "--config", str(tmp_path / "cam.toml"), "--spool", str(tmp_path / "spool"), "--once"]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'cam.toml'}: capture.source: frames: no such folder" in err
    assert f"working directory, {tmp_path.parent}" in err


# ---------------------------------------------------------------------------- site files


@pytest.mark.parametrize("command", [["serve", "--config"], ["validate-config"]])
def test_a_site_entry_naming_a_bad_camera_file_names_the_site_file_and_entry(tmp_path: Path, capsys, command: list[str]) -> None:
    # "cam2.toml: configuration file not found" did not say which site file, or which of its cameras, named it.
    from edge.cli import main

    (tmp_path / "cam1.toml").write_text('[camera]\nid = "one"\n[capture]\nsource = "/dev/video0"\n')
    site = tmp_path / "site.toml"
    site.write_text('[[cameras]]\nconfig = "cam1.toml"\n\n[[cameras]]\nconfig = "cam2.toml"\n')
    assert main([*command, str(site)]) in (1, 2)
    err = capsys.readouterr().err
    assert f"{site}: cameras[1].config = 'cam2.toml': {tmp_path / 'cam2.toml'}: configuration file not found" in err


# ---------------------------------------------------------------------------- edge keygen


def test_keygen_refuses_a_bad_camera_id_with_one_line(tmp_path: Path, capsys) -> None:
    # A ValueError traceback, exit 1.
    from edge.cli import main

    assert main(["keygen", "--camera", "north/1", "--out", str(tmp_path / "k.key")]) == 2
    assert "--camera: camera id 'north/1' is not allowed" in capsys.readouterr().err
    assert not (tmp_path / "k.key").exists()


# ---------------------------------------------------------------------------- edge calibrate


@pytest.mark.parametrize("option, value, message", [
    ("--roi", "nan,2 300,4 5,600", "--roi: 'nan,2' is not a point"),
    ("--lane", "A:1,2 300,inf 5,600", "--lane A: '300,inf' is not a point"),
    ("--road-points", "1,2=3,4 500,6=7,8 9,400=11,12 300,300=nan,16", "--road-points: '300,300=nan,16' is not"),
])
def test_calibrate_scene_refuses_a_point_that_is_not_finite(tmp_path: Path, capsys, option: str, value: str, message: str) -> None:
    # float() took 'nan'; the run ended with a ValueError traceback when the calibration file was written.
    from edge.cli import main

    frame = tmp_path / "frame.png"
    cv2.imwrite(str(frame), np.zeros((720, 1280, 3), np.uint8))
    assert main(["calibrate", "scene", "--frame", str(frame), option, value, "--out", str(tmp_path / "cal.toml")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "cal.toml").exists()


# ---------------------------------------------------------------------------- edge audit


@pytest.mark.parametrize("value", ["0", "-3"])
def test_audit_show_refuses_a_count_below_one(tmp_path: Path, capsys, value: str) -> None:
    # --last -3 showed all but the first three entries (lines[3:]); --last 0 showed them all.
    from edge.cli import main

    log = tmp_path / "audit.log"
    log.write_text("".join(f'{{"seq": {i}, "ts": "t", "event": "e"}}\n' for i in range(5)))
    with pytest.raises(SystemExit) as exit_:
        main(["audit", "show", str(log), "--last", value])
    assert exit_.value.code == 2 and "argument --last" in capsys.readouterr().err


def test_at_the_end_of_a_folder_a_full_spool_is_retried_not_given_up(monkeypatch, caplog) -> None:
    # `edge run --once` on a folder: the source ends within a second, and the shutdown gave up every read that met a
    # disk full for a moment (one attempt, logged as "could not build read"), exit 1: reads lost for good.
    import queue
    from types import SimpleNamespace

    from edge.camera import CameraStats
    from edge.capture import CaptureStats
    from tests.unit.test_camera_spool import FlakySpool, camera_with

    class BriefFullSpool(FlakySpool):
        path = "/var/lib/edge/x/spool.sqlite"

        def depth(self):
            return len(self.written)

        def close(self):
            pass

    spool = BriefFullSpool(failures=3)
    cam = camera_with(spool)
    monkeypatch.setattr(cam._stopping, "wait", lambda timeout=None: cam._stopping.is_set())  # no real sleeping between retries
    cam.stats, cam.publisher, cam.source = CameraStats(), None, SimpleNamespace(stats=CaptureStats())
    cam._stop_requested = threading.Event()  # no signal: the source simply ended
    cam._finished = queue.Queue(maxsize=8)
    cam._publish = lambda track: cam._spool([track.track_id])
    cam._context = threading.Thread(target=cam._context_loop, daemon=True)
    cam._context.start()
    for n in (1, 2):
        cam._finished.put(SimpleNamespace(track_id=n))
    assert cam._shutdown(once=True, flush_timeout_s=1.0) == 0
    assert spool.written == [1, 2] and cam.stats.reads_lost == 0
    assert caplog.text.count("disk is full") == 3 and "retrying" in caplog.text


def test_a_read_given_up_on_a_full_disk_is_logged_as_lost_not_as_a_bug(caplog) -> None:
    # It said "could not build read for track 1" with a traceback: the read was built; the disk refused it.
    import queue
    from types import SimpleNamespace

    from edge.camera import CameraStats
    from tests.unit.test_camera_spool import FlakySpool, camera_with

    cam = camera_with(FlakySpool(failures=1))
    cam._stopping.set()  # a stop was asked for
    cam.stats = CameraStats()
    cam._finished = queue.Queue()
    cam._publish = lambda track: cam._spool([track.track_id])
    for item in (SimpleNamespace(track_id=1), None):
        cam._finished.put(item)
    cam._context_loop()
    (record,) = [r for r in caplog.records if "track 1" in r.getMessage()]
    assert record.getMessage() == "read of track 1 lost: spool /var/lib/edge/x/spool.sqlite: database or disk is full"
    assert record.exc_info is None and cam.stats.reads_lost == 1


def test_a_calibration_file_that_cannot_be_written_is_left_as_it_was_with_no_partial_copy(tmp_path: Path, monkeypatch) -> None:
    # On a full disk the old file was kept (good) but a cut-off cal.toml.tmp was left beside it.
    import errno

    from edge.calibrate.file import Calibration, load_calibration, save_calibration

    path = tmp_path / "cal.toml"
    save_calibration(Calibration(image_size=(1280, 720), camera_id="north"), path)
    before = path.read_bytes()

    def full_disk(self: Path, text: str, *args, **kwargs) -> int:
        with open(self, "w") as f:
            f.write(text[:10])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full_disk)
    with pytest.raises(ConfigError, match=r"cal.toml: cannot write: No space left on device"):
        save_calibration(Calibration(image_size=(1280, 720), camera_id="south"), path)
    assert path.read_bytes() == before and load_calibration(path).camera_id == "north"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cal.toml"]


# ---------------------------------------------------------------------------- signing key


def test_a_signing_key_path_that_is_a_folder_is_named_as_such_not_told_to_chmod(tmp_path: Path) -> None:
    # signing.key_file = "" (or a folder) said "accessible to group or others (mode 0755) ... Run: chmod 600 DIR".
    from edge.signing import Signer

    folder = tmp_path / "keys"
    folder.mkdir(mode=0o755)
    with pytest.raises(ConfigError) as err:
        Signer.load_or_create(folder, "c1")
    assert str(err.value) == f"{folder}: cannot read signing key: Is a directory"


# ---------------------------------------------------------------------------- configuration


@pytest.mark.parametrize("toml, key", [
    ('[signing]\nkey_file = ""\n', "signing.key_file"),
    ('[camera]\ncalibration = ""\n', "camera.calibration"),
    ('[detector]\nmodel = ""\n', "detector.model"),
    ('[spool]\ndir = ""\n', "spool.dir"),
    ('[[privacy.feeds]]\nname = "p"\nkind = "pseudonymised"\nhmac_key_file = ""\n', "privacy.feeds.0.hmac_key_file"),
])
def test_an_empty_path_in_a_config_is_refused_by_key(tmp_path: Path, toml: str, key: str) -> None:
    # "" became Path("."), the config's folder: later errors spoke of a folder (or of "chmod 600" on it), not the key.
    from edge.config import load_camera_config

    (tmp_path / "cam.toml").write_text(toml)
    with pytest.raises(ConfigError) as err:
        load_camera_config(tmp_path / "cam.toml")
    assert f"{key} = '': empty path: leave the key out for its default" in str(err.value)


def test_a_dot_path_in_a_config_is_still_a_path() -> None:
    from edge.config import CameraConfig

    assert CameraConfig.model_validate({"spool": {"dir": "."}}).spool.dir == Path(".")


# ---------------------------------------------------------------------------- edge verify


@pytest.mark.parametrize("images", ["no_such_folder", "a_file"])
def test_verify_refuses_an_images_folder_that_is_not_there(tmp_path: Path, capsys, images: str) -> None:
    # A mistyped --images passed every read as "ok (images not at hand, not checked)", exit 0.
    import hashlib
    import json

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from edge.cli import main
    from edge.signing import Signer

    patch = b"jpeg bytes"
    record = {"read_id": "r1", "camera_id": "c1", "feed": "reads",
              "images": {"patch": {"sha256": hashlib.sha256(patch).hexdigest(), "bytes": len(patch)}}}
    reads = tmp_path / "reads.jsonl"
    reads.write_text(json.dumps(Signer(Ed25519PrivateKey.generate(), "c1", tmp_path / "k").sign(record)) + "\n")
    (tmp_path / "a_file").write_text("")
    assert main(["verify", str(reads)]) == 0  # the read itself is fine
    capsys.readouterr()
    assert main(["verify", str(reads), "--images", str(tmp_path / images)]) == 2
    assert f"--images {tmp_path / images}: no such folder" in capsys.readouterr().err
