"""`edge run` argument and configuration errors: one clear line naming what is at fault."""

import signal

import pytest

from edge.cli import main


@pytest.fixture(autouse=True)
def _keep_signal_handlers():
    """`edge run` installs its SIGTERM/SIGINT handlers first thing: give pytest its own back."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


def test_no_source_names_the_camera_and_its_config_file(tmp_path, capsys):
    config = tmp_path / "north.toml"
    config.write_text('[camera]\nid = "north"\n')
    assert main(["run", "--camera", "north", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert str(config) in err and "north" in err and "capture.source" in err
