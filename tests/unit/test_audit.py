"""The audit log: an intact chain verifies; any edit, removal, insertion or reordering is detected."""

from __future__ import annotations

import json

import pytest

from edge.audit import GENESIS, AuditLog, verify_audit_log
from edge.cli import main
from edge.errors import ConfigError


def _log(tmp_path, n: int = 5):
    path = tmp_path / "audit.log"
    log = AuditLog(path)
    for i in range(n):
        log.append("read_published", read_id=f"id-{i}", feed="reads")
    return path


def _lines(path):
    return path.read_text().splitlines(keepends=True)


def test_intact_log_verifies_and_reopening_continues_the_chain(tmp_path):
    path = _log(tmp_path, 3)
    log = AuditLog(path)
    log.append("retention_purge", removed=2)
    entries = [json.loads(line) for line in _lines(path)]
    assert [e["seq"] for e in entries] == [1, 2, 3, 4]
    assert entries[0]["prev"] == GENESIS and entries[3]["prev"] == entries[2]["hash"]
    assert verify_audit_log(path) == [] and AuditLog.verify(path) == []
    assert log.head() == (4, entries[3]["hash"])


def test_edited_entry_is_detected(tmp_path):
    path = _log(tmp_path)
    lines = _lines(path)
    lines[2] = lines[2].replace('"feed":"reads"', '"feed":"other"')
    path.write_text("".join(lines))
    assert verify_audit_log(path) == [f"{path}:3: 'hash' does not match the entry's content (the entry was edited)"]


def test_edit_with_recomputed_hash_is_caught_by_the_next_line(tmp_path):
    path = _log(tmp_path)
    lines = _lines(path)
    entry = json.loads(lines[1])
    entry["read_id"] = "forged"
    from edge.audit import _entry_hash

    entry["hash"] = _entry_hash(entry)
    lines[1] = json.dumps(entry, separators=(",", ":")) + "\n"
    path.write_text("".join(lines))
    problems = verify_audit_log(path)
    assert len(problems) == 1 and problems[0].startswith(f"{path}:3: 'prev' does not match")


@pytest.mark.parametrize("tamper", ["remove", "insert", "swap", "truncate", "drop_first"])
def test_removed_inserted_reordered_or_cut_lines_are_detected(tmp_path, tamper):
    path = _log(tmp_path)
    lines = _lines(path)
    if tamper == "remove":
        del lines[2]
    elif tamper == "insert":
        lines.insert(2, lines[1])
    elif tamper == "swap":
        lines[1], lines[2] = lines[2], lines[1]
    elif tamper == "truncate":
        lines[-1] = lines[-1][:-20]
    elif tamper == "drop_first":
        del lines[0]
    path.write_text("".join(lines))
    assert verify_audit_log(path), f"{tamper} went undetected"


def test_reserved_fields_are_refused(tmp_path):
    with pytest.raises(ValueError, match="reserved"):
        AuditLog(tmp_path / "a.log").append("x", hash="0")


def test_damaged_last_line_stops_a_new_writer_with_advice(tmp_path):
    path = _log(tmp_path)
    with open(path, "a") as f:
        f.write("garbage\n")
    with pytest.raises(ConfigError, match="edge audit verify"):
        AuditLog(path)


def test_config_change_is_recorded(tmp_path):
    log = AuditLog(tmp_path / "a.log")
    assert log.note_config("a" * 64, "cam.toml") is False
    assert log.note_config("a" * 64, "cam.toml") is False
    assert log.note_config("b" * 64, "cam.toml") is True
    events = [json.loads(line)["event"] for line in _lines(log.path)]
    assert events == ["config_loaded", "config_loaded", "config_changed"]
    assert json.loads(_lines(log.path)[-1])["previous_sha256"] == "a" * 64


def test_audit_verify_cli(tmp_path, capsys):
    path = _log(tmp_path)
    assert main(["audit", "verify", str(path)]) == 0
    assert "intact, 5 entries" in capsys.readouterr().out
    path.write_text(path.read_text().replace("id-3", "id-9"))
    assert main(["audit", "verify", str(path)]) == 1
    out = capsys.readouterr().out
    assert "TAMPERED" in out and "audit.log:4" in out


def test_a_log_rewritten_from_scratch_is_caught_by_an_anchor(tmp_path, capsys):
    path = _log(tmp_path, 3)
    anchor = AuditLog(path).head()[1]
    path.unlink()
    _log(tmp_path, 4)  # a consistent chain, but not the one the back office saw
    assert verify_audit_log(path) == []
    assert main(["audit", "verify", str(path), "--anchor", anchor]) == 1
    assert f"anchored entry {anchor} is not in the log" in capsys.readouterr().out
    assert main(["audit", "verify", str(path), "--anchor", AuditLog(path).head()[1]]) == 0


@pytest.mark.parametrize("failure", ["raises", "short write"])
def test_a_full_disk_adds_nothing_and_leaves_the_chain_intact(tmp_path, monkeypatch, failure):
    import errno
    import os

    from edge.audit import AuditWriteError

    path = tmp_path / "audit.log"
    log = AuditLog(path)
    log.append("config", sha256="a" * 64)
    before = path.read_bytes()
    real_write = os.write

    def full_disk(fd, data):
        if failure == "raises":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data[: len(data) // 2])

    monkeypatch.setattr(os, "write", full_disk)
    with pytest.raises(AuditWriteError, match="No space left on device"):
        log.append("read_published", read_id="r1", feed="reads")
    monkeypatch.setattr(os, "write", real_write)
    assert path.read_bytes() == before
    log.append("read_published", read_id="r1", feed="reads")  # once there is room again, the chain goes on
    assert verify_audit_log(path) == []


def test_a_change_back_to_an_earlier_config_is_recorded_and_an_unchanged_restart_is_not(tmp_path):
    log = AuditLog(tmp_path / "a.log")
    assert log.note_config("a" * 64, "cam.toml") is False
    assert log.note_config("b" * 64, "cam.toml") is True
    assert log.note_config("b" * 64, "cam.toml") is False  # same config as the last start
    assert log.note_config("a" * 64, "cam.toml") is True  # back to the first one: still a change
    last = json.loads(_lines(log.path)[-1])
    assert last["event"] == "config_changed" and last["previous_sha256"] == "b" * 64


def test_two_writers_on_one_log_keep_one_chain(tmp_path):
    """Each AuditLog kept the chain's end in memory: a second writer (another `edge run` for the
    camera, a tool) forked the chain and the log no longer verified."""
    path = tmp_path / "audit.log"
    a, b = AuditLog(path), AuditLog(path)
    a.append("x", n=1)
    b.append("x", n=2)
    a.append("x", n=3)
    assert verify_audit_log(path) == []
    assert [json.loads(line)["seq"] for line in _lines(path)] == [1, 2, 3]
    assert a.head() == (3, json.loads(_lines(path)[-1])["hash"])


def _append_many(path, n):
    log = AuditLog(path)
    for i in range(n):
        log.append("read_published", read_id=f"id-{i}", feed="reads")


def test_concurrent_processes_appending_keep_one_chain(tmp_path):
    import multiprocessing

    path = tmp_path / "audit.log"
    AuditLog(path).append("config_loaded", config_sha256="a" * 64)
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_append_many, args=(path, 40)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert verify_audit_log(path) == [] and len(_lines(path)) == 121


def test_an_audit_log_that_cannot_be_opened_is_named(tmp_path):
    (tmp_path / "audit.log").mkdir()
    with pytest.raises(ConfigError, match=r"audit\.log: cannot open audit log"):
        AuditLog(tmp_path / "audit.log")


def test_audit_show_lists_a_damaged_entry_instead_of_crashing(tmp_path, capsys):
    path = _log(tmp_path, 2)
    with open(path, "a") as f:
        f.write('{"event":"forged"}\n')
    assert main(["audit", "show", str(path)]) == 0
    assert "None" in capsys.readouterr().out.splitlines()[-1]


def test_an_anchor_copied_in_upper_case_or_with_spaces_is_the_same_hash(tmp_path, capsys):
    path = _log(tmp_path, 3)
    anchor = AuditLog(path).head()[1]
    assert main(["audit", "verify", str(path), "--anchor", f" {anchor.upper()}\n"]) == 0
    assert "intact" in capsys.readouterr().out


def test_a_damaged_line_in_the_middle_does_not_stop_the_next_start(tmp_path):
    """last_entry read the log as strict UTF-8 text: one damaged byte anywhere crashed every later start."""
    path = tmp_path / "a.log"
    log = AuditLog(path)
    log.note_config("a" * 64, "cam.toml")
    for i in range(3):
        log.append("read_published", read_id=f"r{i}", feed="reads")
    path.write_bytes(path.read_bytes().replace(b'"r1"', b'"r\xff"'))  # one byte damaged mid-log
    assert AuditLog(path).note_config("a" * 64, "cam.toml") is False
    assert verify_audit_log(path)  # the damage is still reported


@pytest.mark.parametrize("value", ['"\\ud800"', "NaN"])
def test_an_entry_that_cannot_be_hashed_is_named_not_a_crash(tmp_path, value):
    """A lone surrogate or NaN parses from JSON but made the hash computation raise: verify crashed."""
    path = _log(tmp_path, 3)
    lines = _lines(path)
    lines[1] = lines[1].replace('"feed":"reads"', f'"feed":{value}')
    path.write_text("".join(lines))
    assert verify_audit_log(path) == [f"{path}:2: 'hash' does not match the entry's content (the entry was edited)"]


@pytest.mark.parametrize("damage", ["deleted", "cut back"])
def test_a_log_deleted_or_cut_back_under_a_running_writer_does_not_restart_a_clean_chain(tmp_path, damage):
    path = _log(tmp_path, 1)
    log = AuditLog(path)
    log.append("read_published", read_id="r1", feed="reads")
    if damage == "deleted":
        path.unlink()
    else:
        path.write_text(_lines(path)[0])
    log.append("read_published", read_id="r2", feed="reads")
    assert verify_audit_log(path)  # the gap shows
