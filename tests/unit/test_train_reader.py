"""Training the reader (needs the `train` extra: torch): a run stopped and resumed is the run never stopped."""

from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="the train extra (torch) is not installed: scripts/setup.sh --train")

from models.train.train_reader import main  # noqa: E402


def _run(out: Path, *extra: str) -> None:
    # No prepared real crops (the data folder is empty): rendered plates only, fonts from Debian's packages.
    main(["--data", str(out.parent / "no-data"), "--out", str(out), "--minutes", "0", "--max-steps", "4", "--save-every", "1",
          "--batch", "4", "--workers", "0", "--seed", "7", *extra])


def test_a_resumed_run_ends_with_the_same_weights(tmp_path):
    _run(tmp_path / "whole")
    _run(tmp_path / "parts", "--stop-after-steps", "2")
    assert not (tmp_path / "parts" / "reader.onnx").exists()  # stopped: nothing exported yet
    assert torch.load(tmp_path / "parts" / "train_state.pt", weights_only=True)["step"] == 2
    _run(tmp_path / "parts", "--resume")
    whole = torch.load(tmp_path / "whole" / "reader.pt", weights_only=False)["model"]
    parts = torch.load(tmp_path / "parts" / "reader.pt", weights_only=False)["model"]
    assert whole.keys() == parts.keys()
    for k in whole:
        assert torch.equal(whole[k], parts[k]), k


def test_resuming_with_another_schedule_is_refused(tmp_path):
    _run(tmp_path / "run", "--stop-after-steps", "1")
    with pytest.raises(SystemExit, match="--max-steps 4"):
        main(["--data", str(tmp_path / "no-data"), "--out", str(tmp_path / "run"), "--minutes", "0", "--max-steps", "9",
              "--batch", "4", "--workers", "0", "--seed", "7", "--resume"])
