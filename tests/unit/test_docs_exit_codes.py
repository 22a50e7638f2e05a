"""README's exit status rule, command by command: 2 for bad usage, configuration or input,
with a one-line message that names the file, key or value at fault and no traceback.

Every case fails before a model is loaded, so the whole file runs in about a second.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from edge.cli import main

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = str(ROOT / "sample_frames" / "singles" / "single_000_day_front.jpg")
BAD_CONFIG = '[camera]\nid = "c1"\n[detector]\nthreshold = 1.5\n'


@pytest.fixture(autouse=True)
def _keep_signal_handlers():
    """`edge run` installs SIGTERM/SIGINT handlers first thing: give pytest its own back."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


def status(argv: list[str]) -> int:
    """The exit status `edge ARGV` would give (argparse's usage errors leave through SystemExit)."""
    try:
        return main(argv)
    except SystemExit as done:
        return int(done.code)


# (argv with BAD standing for a camera file with detector.threshold = 1.5, what stderr must name)
BAD_CONFIG_CASES = [
    (["run", "--source", SAMPLE, "--camera", "c1", "--once", "--config", "BAD"], "detector.threshold"),
    (["read", "--json", "--config", "BAD", SAMPLE], "detector.threshold"),
    (["bench", str(ROOT / "sample_frames" / "singles"), "--config", "BAD"], "detector.threshold"),
    (["privacy-report", "--config", "BAD"], "detector.threshold"),
    (["keygen", "--config", "BAD"], "detector.threshold"),
]


@pytest.mark.parametrize("argv, named", BAD_CONFIG_CASES, ids=lambda v: v[0] if isinstance(v, list) else "")
def test_a_bad_camera_file_is_exit_2_naming_the_key(argv, named, tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(BAD_CONFIG)
    assert status([str(bad) if a == "BAD" else a for a in argv]) == 2
    err = capsys.readouterr().err
    assert named in err and str(bad) in err and "Traceback" not in err


MISSING = "/nonexistent/edge-docs-test"

# (argv, the text stderr must name)
BAD_INPUT_CASES = [
    (["run", "--source", MISSING, "--camera", "c1", "--once"], MISSING),
    (["read", "--json", MISSING], MISSING),
    (["bench", MISSING], MISSING),
    (["serve", "--config", MISSING + ".toml"], MISSING),
    (["verify", MISSING + ".jsonl"], MISSING),
    (["verify", "--keys", MISSING, SAMPLE], MISSING),
    (["audit", "verify", MISSING + ".log"], MISSING),
    (["calibrate", "lens", "--images", MISSING, "--board", "9x6", "--square-mm", "30"], MISSING),
    (["calibrate", "lens", "--images", str(ROOT / "sample_frames" / "singles"), "--board", "9by6", "--square-mm", "30"], "9by6"),
    (["receive", "--broker", "foo://host", "--out", MISSING], "foo://host"),
]


@pytest.mark.parametrize("argv, named", BAD_INPUT_CASES, ids=lambda v: " ".join(v[:2]) if isinstance(v, list) else "")
def test_a_missing_or_malformed_input_is_exit_2_naming_it(argv, named, capsys):
    assert status(argv) == 2
    err = capsys.readouterr().err
    assert named in err and "Traceback" not in err


@pytest.mark.parametrize("argv", [["nosuchcommand"], ["read", "--nosuchflag", SAMPLE], ["schema", "extra"], [],
                                  ["audit"], ["calibrate"], ["keygen"],
                                  ["validate-config"]], ids=" ".join)
def test_bad_usage_is_exit_2_and_said_on_stderr(argv, capsys):
    assert status(argv) == 2
    said = capsys.readouterr()
    assert said.err.strip() and not said.out  # stdout is for machine output only
