"""Feeds, pseudonyms, hotlists and retention: what each subscriber gets is what the policy says."""

from __future__ import annotations

import json
import os

import jsonschema
import pytest

from edge.audit import AuditLog
from edge.cli import main
from edge.context import build_read
from edge.errors import ConfigError
from edge.privacy import FeedRouter, Hotlist, apply_retention, normalise_plate, privacy_report
from edge.record import load_schema
from edge.signing import Signer, verify_record
from tests.unit import read_fixtures as F

PLATES = ("AB12CDE", "XY70ZZT", "LM05NOP")


def _secret(path, data=b"k" * 32, mode=0o600):
    path.write_bytes(data)
    os.chmod(path, mode)
    return path


@pytest.fixture
def setup(tmp_path):
    _secret(tmp_path / "hmac.key")
    (tmp_path / "hot.txt").write_text("# stolen vehicles\nxy70 zzt\n\nQQ11QQQ  # cloned\n")
    cfg = F.config(
        tmp_path,
        feeds=[
            {"name": "reads", "kind": "full"},
            {"name": "counts", "kind": "pseudonymised", "hmac_key_file": "hmac.key"},
            {"name": "hits", "kind": "hits_only", "hotlist_file": "hot.txt"},
        ],
    )
    audit = AuditLog(tmp_path / "audit.log")
    signer = Signer.generate("cam-1")
    router = FeedRouter(cfg, signer, audit)
    reads = [
        build_read(F.track(p, track_id=i, seed=i, alternatives=("QQ11QQQ",) if p == "LM05NOP" else ()), cfg, models=F.MODELS)
        for i, p in enumerate(PLATES)
    ]
    return cfg, router, signer, audit, reads


def _by_feed(router, reads):
    out: dict[str, list] = {}
    for r in reads:
        for item in router.route(r):
            out.setdefault(item.feed, []).append(item)
    return out


def test_pseudonymised_feed_carries_no_plate_text(setup):
    cfg, router, signer, _, reads = setup
    feeds = _by_feed(router, reads)
    assert len(feeds["counts"]) == 3
    for item, read in zip(feeds["counts"], reads):
        plate = read.record["plate"]
        text = item.record.decode()
        assert plate not in text
        for alt in read.record["alternatives"]:
            assert alt["plate"] not in text
        record = json.loads(text)
        assert "plate" not in record and "alternatives" not in record and "char_confidences" not in record
        assert item.images == {} and record["images"] == {}  # a patch or overview would show the plate
        assert record["read_id"] != read.record["read_id"]
        assert verify_record(record) == []
        jsonschema.validate(record, load_schema())


def test_pseudonyms_are_keyed_and_stable(setup, tmp_path):
    cfg, router, signer, _, reads = setup
    first = json.loads(router.route(reads[0])[1].record)["plate_hmac"]
    again = json.loads(router.route(reads[0])[1].record)["plate_hmac"]
    other = json.loads(router.route(reads[1])[1].record)["plate_hmac"]
    assert first == again and first["value"] != other["value"]
    # Another key gives other pseudonyms: without the key they cannot be recomputed from a plate.
    _secret(tmp_path / "hmac.key", b"z" * 32)
    rekeyed = json.loads(FeedRouter(cfg, signer).route(reads[0])[1].record)["plate_hmac"]
    assert rekeyed["value"] != first["value"] and rekeyed["key_id"] != first["key_id"]


def test_hits_only_feed_carries_only_hotlist_matches(setup):
    _, router, _, _, reads = setup
    feeds = _by_feed(router, reads)
    hits = [json.loads(i.record) for i in feeds["hits"]]
    # XY70ZZT is listed (as "xy70 zzt"); LM05NOP only has a listed plate as an alternative: no hit.
    assert [h["plate"] for h in hits] == ["XY70ZZT"]
    assert hits[0]["hotlist"]["name"] == "hot.txt" and hits[0]["feed_kind"] == "hits_only"
    assert feeds["hits"][0].images.keys() == {"patch", "overview"}
    assert verify_record(hits[0], feeds["hits"][0].images) == []
    jsonschema.validate(hits[0], load_schema())


def test_full_feed_keeps_everything_and_the_read_id(setup):
    _, router, _, _, reads = setup
    item = router.route(reads[0])[0]
    record = json.loads(item.record)
    assert item.feed == "reads" and record["read_id"] == reads[0].record["read_id"]
    assert record["plate"] == "AB12CDE" and item.images == reads[0].images
    assert verify_record(record, item.images) == []


def test_each_release_is_audited_without_plate_text(setup):
    _, router, _, audit, reads = setup
    _by_feed(router, reads)
    log = audit.path.read_text()
    entries = [json.loads(line) for line in log.splitlines()]
    assert [(e["feed"], e["event"]) for e in entries if e["event"] == "read_published"] == [
        ("reads", "read_published"), ("counts", "read_published"),
        ("reads", "read_published"), ("counts", "read_published"), ("hits", "read_published"),
        ("reads", "read_published"), ("counts", "read_published"),
    ]
    assert all(p not in log for p in PLATES)
    assert AuditLog.verify(audit.path) == []


def test_feed_without_imagery_sends_no_images(tmp_path):
    cfg = F.config(tmp_path, feeds=[{"name": "reads", "kind": "full", "imagery": False}])
    read = build_read(F.track(), cfg, models=F.MODELS)
    item = FeedRouter(cfg, Signer.generate("cam-1")).route(read)[0]
    assert item.images == {} and json.loads(item.record)["images"] == {}


def test_hotlist_is_normalised_and_reloaded_when_changed(tmp_path):
    path = tmp_path / "hot.txt"
    path.write_text("ab12 cde\n")
    hot = Hotlist(path)
    assert "AB12CDE" in hot and "ab-12 cde" in hot and "XY70ZZT" not in hot
    path.write_text("xy70zzt\nab12cde\n")
    os.utime(path, ns=(path.stat().st_mtime_ns + 10**9,) * 2)
    assert "XY70ZZT" in hot and len(hot) == 2
    assert normalise_plate(" ab 12-cde ") == "AB12CDE"


def test_an_unreadable_hotlist_keeps_the_last_list_and_loses_no_read(tmp_path, caplog):
    path = tmp_path / "hot.txt"
    path.write_text("ab12cde\n")
    hot = Hotlist(path)
    path.unlink()
    path.mkdir()  # stat() works, reading fails: as with a file made unreadable
    assert "AB12CDE" in hot and "XY70ZZT" not in hot
    assert "cannot read hotlist" in caplog.text


@pytest.mark.parametrize("data,mode,message", [(b"short", 0o600, "at least 16"), (b"k" * 32, 0o644, "chmod 600")])
def test_weak_or_exposed_hmac_key_is_refused(tmp_path, data, mode, message):
    _secret(tmp_path / "hmac.key", data, mode)
    cfg = F.config(tmp_path, feeds=[{"name": "counts", "kind": "pseudonymised", "hmac_key_file": "hmac.key"}])
    with pytest.raises(ConfigError, match=message):
        FeedRouter(cfg, Signer.generate("cam-1"))


class FakeSpool:
    """Reads by age in hours; purge_older_than deletes as a spool must."""

    def __init__(self, ages_h):
        self.ages_h = list(ages_h)

    def purge_older_than(self, age_s):
        before = len(self.ages_h)
        self.ages_h = [a for a in self.ages_h if a * 3600 <= age_s]
        return before - len(self.ages_h)


def test_retention_deletes_what_is_older_than_the_limit_and_audits_it(tmp_path):
    cfg = F.config(tmp_path, retention_hours=24)
    spool = FakeSpool([0.5, 23.9, 24.1, 100])
    audit = AuditLog(tmp_path / "audit.log")
    assert apply_retention(spool, cfg, audit) == 2
    assert spool.ages_h == [0.5, 23.9]
    entry = json.loads(audit.path.read_text())
    assert entry["event"] == "retention_purge" and entry["removed"] == 2 and entry["older_than_hours"] == 24
    assert apply_retention(spool, cfg, audit) == 0
    assert len(audit.path.read_text().splitlines()) == 1  # nothing deleted, nothing to audit


def test_privacy_report_says_what_leaves_in_plain_english(setup, capsys):
    cfg = setup[0]
    text = privacy_report(cfg)
    assert "Feed 'reads' (full), MQTT topic anpr/cam-1/reads" in text
    assert "Feed 'counts' (pseudonymised)" in text and "all images" in text
    assert "Feed 'hits' (hits_only)" in text and "2 plates now" in text
    assert "older than 72 hours is deleted" in text and "Bystander redaction is OFF" in text
    assert "Ed25519" in text and "edge audit verify" in text
    toml = cfg.source_file
    toml.write_text('[camera]\nid = "cam-7"\n[imagery]\nlevel = "none"\n[privacy]\nretention_hours = 12\n')
    assert main(["privacy-report", "--config", str(toml)]) == 0
    out = capsys.readouterr().out
    assert "camera 'cam-7'" in out and "No images leave this camera" in out and "older than 12 hours" in out


def test_pseudonymised_read_id_cannot_be_computed_from_the_full_feeds_id(setup, tmp_path):
    """The unkeyed derivation (uuid5 of the full read id and the feed's name) let anyone join the two records."""
    from edge.record import feed_read_id

    cfg, router, signer, _, reads = setup
    full, counts = (json.loads(item.record) for item in router.route(reads[0])[:2])
    assert counts["feed"] == "counts"
    assert counts["read_id"] != feed_read_id(full["read_id"], "counts")
    assert json.loads(router.route(reads[0])[1].record)["read_id"] == counts["read_id"]  # stable across retries
    _secret(tmp_path / "hmac.key", b"z" * 32)
    assert json.loads(FeedRouter(cfg, signer).route(reads[0])[1].record)["read_id"] != counts["read_id"]


def test_hotlist_lines_that_can_never_match_are_named_by_line_without_their_text(tmp_path, caplog):
    """Full-width forms match; Cyrillic look-alikes and CSV columns silently never matched before."""
    path = tmp_path / "hot.txt"
    path.write_text("ＡＢ１２ ＣＤＥ\nАВ12СDE  # Cyrillic А, В and С\n\nXY70ZZT,stolen 2026-11-01\nLM05 NOP\n", encoding="utf-8")
    hot = Hotlist(path)
    assert "AB12CDE" in hot and "LM05NOP" in hot and len(hot) == 2
    assert hot.bad_lines == (2, 4)
    assert "hot.txt: 2 lines are not a plate" in caplog.text and "skipped: 2, 4" in caplog.text
    assert "XY70" not in caplog.text and "В12" not in caplog.text  # a plate of interest never goes to the log
    cfg = F.config(tmp_path, feeds=[{"name": "hits", "kind": "hits_only", "hotlist_file": "hot.txt"}])
    assert "2 plates now; lines 2, 4 are not plates and are ignored" in privacy_report(cfg)


def test_an_empty_hotlist_is_reported(tmp_path, caplog):
    path = tmp_path / "hot.txt"
    path.write_text("# nothing yet\n")
    assert len(Hotlist(path)) == 0
    assert "hot.txt holds no plates" in caplog.text


def test_a_hotlist_replaced_by_rename_with_the_same_size_and_times_is_reloaded(tmp_path):
    path, new = tmp_path / "hot.txt", tmp_path / "hot.txt.new"
    path.write_text("AB12CDE\n")
    hot = Hotlist(path)
    st = path.stat()
    new.write_text("XY70ZZT\n")  # same size
    os.utime(new, ns=(st.st_atime_ns, st.st_mtime_ns))  # as `cp -p` or `rsync -t` leave it
    os.replace(new, path)
    assert "XY70ZZT" in hot and "AB12CDE" not in hot


def test_keys_in_use_and_their_rotation_are_audited_by_id_only(setup, tmp_path):
    cfg, router, signer, audit, reads = setup
    entries = [json.loads(line) for line in audit.path.read_text().splitlines()]
    keys = next(e for e in entries if e["event"] == "keys_loaded")["keys"]
    pseudonym_id = json.loads(router.route(reads[0])[1].record)["plate_hmac"]["key_id"]
    assert keys == {"signing": signer.key_id, "pseudonym:counts": pseudonym_id}
    _secret(tmp_path / "hmac.key", b"z" * 32)  # the pseudonym key is rotated; the camera restarts
    FeedRouter(cfg, signer, audit)
    last = json.loads(audit.path.read_text().splitlines()[-1])
    assert last["event"] == "keys_changed" and last["previous"] == keys
    assert last["keys"]["signing"] == signer.key_id and last["keys"]["pseudonym:counts"] != pseudonym_id
    text = audit.path.read_text()
    assert "k" * 16 not in text and "z" * 16 not in text  # ids, never key material
    assert AuditLog.verify(audit.path) == []


def test_each_hotlist_version_is_audited_by_hash_before_it_is_used(setup, tmp_path):
    _, router, _, audit, reads = setup

    def loaded():
        return [json.loads(line) for line in audit.path.read_text().splitlines() if '"hotlist_loaded"' in line]

    first = loaded()
    assert len(first) == 1 and first[0]["feed"] == "hits" and first[0]["plates"] == 2 and first[0]["file"] == "hot.txt"
    path = tmp_path / "hot.txt"
    path.write_text("AB12CDE\n")
    os.utime(path, ns=(path.stat().st_mtime_ns + 10**9,) * 2)
    hits = [i for i in router.route(reads[0]) if i.feed == "hits"]
    assert len(hits) == 1  # AB12CDE is now listed
    now = loaded()
    assert len(now) == 2 and now[1]["sha256"] == json.loads(hits[0].record)["hotlist"]["sha256"]
    assert "AB12CDE" not in json.dumps(now)


def test_a_hotlist_version_that_cannot_be_audited_is_not_used(tmp_path):
    from edge.audit import AuditWriteError

    path = tmp_path / "hot.txt"
    path.write_text("AB12CDE\n")
    fail = {"on": False}

    def on_load(hotlist):
        if fail["on"]:
            raise AuditWriteError("audit log: cannot write: No space left on device")

    hot = Hotlist(path, on_load)
    fail["on"] = True
    path.write_text("XY70ZZT\n")
    os.utime(path, ns=(path.stat().st_mtime_ns + 10**9,) * 2)
    with pytest.raises(AuditWriteError):
        "XY70ZZT" in hot  # noqa: B015 - the lookup itself must fail: the camera retries the read
    fail["on"] = False
    assert "XY70ZZT" in hot and "AB12CDE" not in hot


def test_privacy_report_does_not_overstate_redaction_and_names_an_unusable_key(tmp_path):
    """It said 'the unblurred scene never leaves' the camera, though plates the detector missed and the
    patch's margin are sent as captured, and it described a pseudonymised feed
    whose key file was missing (the camera then refuses to start) as working."""
    cfg = F.config(tmp_path, imagery={"redact_bystanders": True},
                   feeds=[{"name": "counts", "kind": "pseudonymised", "hmac_key_file": "missing.key"}])
    text = privacy_report(cfg)
    assert "unblurred scene never leaves" not in text
    assert "Number plates of other vehicles that the detector found in the same frame are pixelated too" in text
    assert "a plate it missed (too small, hidden, unlike a plate) is sent as captured" in text
    off = privacy_report(F.config(tmp_path, imagery={"redact_bystanders": False}))
    assert "people and other vehicles' number plates visible in the overview are sent as captured" in off
    assert "It is not searched for faces" in text
    assert "missing.key (NOT USABLE NOW, the camera will not start" in text
    assert "frames are at least 1280 pixels wide" in text  # the 12 px promise holds only there
    assert "with no broker configured, nothing confirms receipt" in text


def test_privacy_report_of_a_site_file_covers_each_camera(tmp_path, capsys):
    """A site file (edge serve) was refused with 'unknown key' errors: a site's DPIA had no report."""
    (tmp_path / "a.toml").write_text('[camera]\nid = "cam-a"\n')
    (tmp_path / "b.toml").write_text('[camera]\nid = "cam-b"\n[imagery]\nlevel = "none"\n')
    site = tmp_path / "site.toml"
    site.write_text('[[cameras]]\nconfig = "a.toml"\n[[cameras]]\nconfig = "b.toml"\nsource = "/dev/video0"\n')
    assert main(["privacy-report", "--config", str(site)]) == 0
    out = capsys.readouterr().out
    assert "camera 'cam-a'" in out and "camera 'cam-b'" in out and "No images leave this camera" in out
    assert out.index("camera 'cam-a'") < out.index("camera 'cam-b'")


def test_a_purge_whose_audit_entry_failed_is_audited_with_the_next_one(tmp_path, monkeypatch):
    """The purge cannot be undone: when its audit write failed (full disk), the retry found nothing
    left to delete and the deletion never reached the audit log."""
    from edge.audit import AuditWriteError

    cfg = F.config(tmp_path, retention_hours=24)
    spool = FakeSpool([30, 40])
    audit = AuditLog(tmp_path / "audit.log")
    real_append = AuditLog.append

    def full_disk(self, event, **fields):
        raise AuditWriteError(f"audit log {self.path}: cannot write: No space left on device")

    monkeypatch.setattr(AuditLog, "append", full_disk)
    with pytest.raises(AuditWriteError):
        apply_retention(spool, cfg, audit)
    assert spool.ages_h == []  # deleted all the same
    monkeypatch.setattr(AuditLog, "append", real_append)
    assert apply_retention(spool, cfg, audit) == 0
    entries = [json.loads(line) for line in audit.path.read_text().splitlines()]
    assert [(e["event"], e["removed"]) for e in entries] == [("retention_purge", 2)]
    assert apply_retention(spool, cfg, audit) == 0 and len(audit.path.read_text().splitlines()) == 1


def test_config_digest_of_a_path_that_is_not_utf8_is_made_not_a_crash(tmp_path):
    from edge.privacy import config_digest

    odd = F.config(tmp_path).with_overrides(capture={"source": "/srv/caf\udce9/frames"})  # Latin-1 byte kept by Python
    plain = F.config(tmp_path).with_overrides(capture={"source": "/srv/cafe/frames"})
    assert len(config_digest(odd)) == 64 and config_digest(odd) != config_digest(plain)
