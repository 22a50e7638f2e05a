"""Signatures: a changed byte anywhere in a record or image fails, and `edge verify` says what."""

from __future__ import annotations

import base64
import json
import os
import stat

import pytest

from edge.cli import main
from edge.context import build_read
from edge.errors import ConfigError
from edge.record import to_json_line, with_inline_images
from edge.signing import Signer, load_trusted_keys, public_key_path, verify_record
from tests.unit import read_fixtures as F


@pytest.fixture(scope="module")
def read(tmp_path_factory):
    return build_read(F.track(), F.config(tmp_path_factory.mktemp("cfg")), models=F.MODELS, clock_synced=False)


@pytest.fixture(scope="module")
def signer():
    return Signer.generate("cam-1")


def test_signed_record_and_images_verify(read, signer):
    record = signer.sign(read.record)
    assert record["signature"]["alg"] == "Ed25519" and record["signature"]["key_id"] == signer.key_id
    assert verify_record(record, read.images) == []
    assert verify_record(json.loads(to_json_line(record)), read.images) == []  # survives JSON


def test_every_changed_byte_of_the_published_line_fails(read, signer):
    line = to_json_line(signer.sign(read.record)).encode()
    sig_start = line.index(b'"signature"')
    # Flip one byte at a time across the signed part of the line (sampled: every 7th byte);
    # each change must make the line unreadable or its signature invalid.
    for i in range(1, sig_start - 1, 7):
        changed = bytearray(line)
        changed[i] = changed[i] ^ 0x01
        try:
            record = json.loads(changed.decode())
        except (ValueError, UnicodeDecodeError):
            continue
        assert verify_record(record), f"byte {i} changed ({line[i:i + 1]!r}) but the record still verifies"


def test_changed_field_names_the_signature(read, signer):
    record = signer.sign(read.record)
    problems = verify_record({**record, "plate": "AB12CDF"})
    assert problems == ["signature does not match the record (a signed field was changed, added or removed)"]
    assert verify_record({**record, "extra": 1})
    assert verify_record({k: v for k, v in record.items() if k != "lane"})


def test_changed_image_byte_fails_and_names_the_image(read, signer):
    record = signer.sign(read.record)
    for kind in ("patch", "overview"):
        data = bytearray(read.images[kind])
        data[len(data) // 2] ^= 0xFF
        problems = verify_record(record, {**read.images, kind: bytes(data)})
        assert len(problems) == 1 and problems[0].startswith(f"image {kind!r}: SHA-256")


def test_changing_the_image_hash_in_the_record_breaks_the_signature(read, signer):
    record = signer.sign(read.record)
    record["images"] = {**record["images"], "patch": {**record["images"]["patch"], "sha256": "0" * 64}}
    assert "signature does not match" in verify_record(record)[0]


def test_trusted_keys_accept_only_known_keys(read, signer):
    record = signer.sign(read.record)
    assert verify_record(record, trusted_keys={signer.key_id: signer.public_raw}) == []
    other = Signer.generate("cam-1")
    assert verify_record(record, trusted_keys={other.key_id: other.public_raw}) == [
        f"signing key {signer.key_id} is not among the trusted keys"
    ]
    # A forger who re-signs with their own key but claims the real key id is caught too.
    forged = other.sign({**read.record, "plate": "XX99XXX"})
    forged["signature"]["key_id"] = signer.key_id
    assert verify_record(forged, trusted_keys={signer.key_id: signer.public_raw})


def test_unsigned_record_fails(read):
    assert verify_record(read.record) == ["record is not signed (no 'signature' object)"]


def test_load_or_create_makes_a_private_key_once(tmp_path):
    path = tmp_path / "keys" / "cam-1.key"
    a = Signer.load_or_create(path, "cam-1")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert public_key_path(path).is_file()
    b = Signer.load_or_create(path, "cam-1")
    assert a.key_id == b.key_id
    assert load_trusted_keys(path.parent) == {a.key_id: a.public_raw}


def test_a_full_disk_at_key_creation_leaves_no_half_key_behind(tmp_path, monkeypatch):
    """Otherwise every later start refuses the truncated file and the camera never comes up."""
    import errno

    def full_disk(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    path = tmp_path / "cam-1" / "signing.key"
    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(ConfigError, match="No space left on device"):
        Signer.load_or_create(path, "cam-1")
    assert not path.exists() and not public_key_path(path).exists()
    monkeypatch.undo()
    assert Signer.load_or_create(path, "cam-1").key_id  # once there is room, the key is made


def test_group_readable_key_is_refused_with_the_fix(tmp_path):
    path = tmp_path / "cam-1.key"
    Signer.load_or_create(path, "cam-1")
    os.chmod(path, 0o640)
    with pytest.raises(ConfigError, match=r"cam-1\.key: signing key is accessible to group or others \(mode 0640\).*chmod 600"):
        Signer.load_or_create(path, "cam-1")


def _write_lines(path, records):
    path.write_text("".join(to_json_line(r) + "\n" for r in records))


def test_verify_cli_checks_inline_images_and_exits_1_on_any_failure(read, signer, tmp_path, capsys):
    good = with_inline_images(signer.sign(read.record), read.images)
    bad_image = json.loads(json.dumps(good))
    data = bytearray(read.images["patch"])
    data[100] ^= 1
    bad_image["image_data"]["patch"] = base64.b64encode(bytes(data)).decode()
    ok_file, bad_file = tmp_path / "ok.jsonl", tmp_path / "bad.jsonl"
    _write_lines(ok_file, [good, good])
    _write_lines(bad_file, [good, bad_image])

    assert main(["verify", str(ok_file)]) == 0
    out = capsys.readouterr()
    assert "2 of 2 reads verify" in out.out and "integrity only" in out.out and "no --keys" in out.err

    assert main(["verify", str(bad_file)]) == 1
    out = capsys.readouterr().out
    assert "line 2 read" in out and "FAILED" in out and "image 'patch': SHA-256" in out and "1 of 2 reads verify" in out


def test_verify_cli_with_trusted_keys_and_image_folder(read, signer, tmp_path, capsys):
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "cam-1.pub").write_bytes(_pem(signer))
    record = signer.sign(read.record)
    images = tmp_path / "images"
    images.mkdir()
    for kind, data in read.images.items():
        (images / f"{record['read_id']}.{kind}.jpg").write_bytes(data)
    reads = tmp_path / "reads.jsonl"
    _write_lines(reads, [record])
    assert main(["verify", str(reads), "--keys", str(keys), "--images", str(images), "--require-images"]) == 0
    assert "1 of 1 reads verify" in capsys.readouterr().out

    (images / f"{record['read_id']}.overview.jpg").unlink()
    assert main(["verify", str(reads), "--keys", str(keys), "--images", str(images), "--require-images"]) == 1
    assert "images listed but not supplied: overview" in capsys.readouterr().out

    # The layout `edge receive` writes: <read_id>/<kind>.jpg
    (images / record["read_id"]).mkdir()
    (images / record["read_id"] / "overview.jpg").write_bytes(read.images["overview"][:-1] + b"\x00")
    assert main(["verify", str(reads), "--keys", str(keys), "--images", str(images)]) == 1
    assert "image 'overview': SHA-256" in capsys.readouterr().out

    stranger = Signer.generate("cam-1")
    _write_lines(reads, [stranger.sign(read.record)])
    assert main(["verify", str(reads), "--keys", str(keys)]) == 1
    assert "not among the trusted keys" in capsys.readouterr().out


def _pem(signer: Signer) -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    return Ed25519PublicKey.from_public_bytes(signer.public_raw).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_keygen_cli_creates_key_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "cam-9.key"
    assert main(["keygen", "--camera", "cam-9", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert stat.S_IMODE(out.stat().st_mode) == 0o600 and public_key_path(out).is_file()
    assert Signer.load(out, "cam-9").key_id in text
    assert main(["keygen", "--camera", "cam-9", "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_verify_cli_reads_standard_input(read, signer, monkeypatch, capsys):
    import io

    line = to_json_line(with_inline_images(signer.sign(read.record), read.images))
    monkeypatch.setattr("sys.stdin", io.StringIO(line + "\n"))
    assert main(["verify", "-"]) == 0
    assert "1 of 1 reads verify" in capsys.readouterr().out


def test_verify_cli_refuses_a_line_with_a_repeated_key(read, signer, tmp_path, capsys):
    # json.loads keeps the last of two equal keys, so a plate put in front of the signed one would
    # verify here, while a back office whose parser keeps the first one stores the forged plate.
    line = to_json_line(signer.sign(read.record))
    forged = '{"plate":"ZZ99ZZZ",' + line[1:]
    assert json.loads(forged)["plate"] == read.record["plate"]
    path = tmp_path / "forged.jsonl"
    path.write_text(forged + "\n")
    assert main(["verify", str(path)]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "'plate'" in out and "0 of 1 reads verify" in out


def test_verify_cli_names_a_malformed_line_and_checks_the_rest(read, signer, tmp_path, capsys):
    good = with_inline_images(signer.sign(read.record), read.images)
    malformed = {**good, "images": ["patch"]}  # "images" must be an object of image kinds
    path = tmp_path / "reads.jsonl"
    _write_lines(path, [malformed, good])
    assert main(["verify", str(path)]) == 1
    out = capsys.readouterr().out
    assert "line 1 read" in out and "FAILED" in out and "'images'" in out
    assert "line 2 read" in out and "1 of 2 reads verify" in out


def test_key_files_that_cannot_be_read_or_made_are_named(tmp_path, capsys):
    """Each of these ended in a traceback (FileNotFoundError, IsADirectoryError) instead of a line naming the file."""
    with pytest.raises(ConfigError, match=r"nokey\.key: cannot read signing key: No such file"):
        Signer.load(tmp_path / "nokey.key", "cam-1")
    keys = tmp_path / "keys"
    (keys / "cam-1.pub").mkdir(parents=True)
    with pytest.raises(ConfigError, match=r"cam-1\.pub: cannot read trusted key: Is a directory"):
        load_trusted_keys(keys)
    (tmp_path / "file").write_text("")
    assert main(["keygen", "--camera", "cam-1", "--out", str(tmp_path / "file" / "cam-1.key")]) == 2
    assert "cam-1.key: cannot create signing key" in capsys.readouterr().err
    assert main(["keygen", "--hmac", str(tmp_path / "file" / "stats.hmac")]) == 2
    assert "stats.hmac: cannot create HMAC key" in capsys.readouterr().err


def test_verify_cli_reports_a_deeply_nested_line_and_checks_the_rest(read, signer, tmp_path, capsys):
    path = tmp_path / "reads.jsonl"
    path.write_text("[" * 100_000 + "]" * 100_000 + "\n" + to_json_line(signer.sign(read.record)) + "\n")
    assert main(["verify", str(path)]) == 1
    out = capsys.readouterr().out
    assert "line 1 read ?: FAILED" in out and "nested too deeply" in out and "1 of 2 reads verify" in out


def test_a_trusted_key_vouches_only_for_its_own_camera(read, tmp_path, capsys):
    """With --keys, any trusted camera's key verified reads claiming to come from any other camera:
    one compromised camera could put vehicles in front of every other camera."""
    keys = tmp_path / "keys"
    cam1 = Signer.load_or_create(keys / "cam-1.key", "cam-1")
    assert main(["keygen", "--camera", "cam-2", "--out", str(keys / "cam-2.key")]) == 0
    cam2 = Signer.load(keys / "cam-2.key", "cam-2")
    trusted = load_trusted_keys(keys)
    assert trusted.cameras == {cam1.key_id: "cam-1", cam2.key_id: "cam-2"}
    assert read.record["camera_id"] == "cam-1"
    assert verify_record(cam1.sign(read.record), trusted_keys=trusted) == []
    forged = cam2.sign(read.record)
    assert verify_record(forged, trusted_keys=trusted) == [
        f"signed with camera 'cam-2''s key {cam2.key_id}, but the read claims camera_id 'cam-1'"
    ]
    assert verify_record(forged) == []  # without trusted keys it is an integrity check only, as documented
    reads = tmp_path / "reads.jsonl"
    _write_lines(reads, [cam1.sign(read.record), forged])
    assert main(["verify", str(reads), "--keys", str(keys)]) == 1
    out = capsys.readouterr().out
    assert "trusted for camera cam-1" in out and "1 of 2 reads verify" in out


def test_a_key_bound_to_two_cameras_is_refused_naming_both_files(tmp_path):
    keys = tmp_path / "keys"
    Signer.load_or_create(keys / "cam-1.key", "cam-1")
    pub = public_key_path(keys / "cam-1.key")
    (keys / "copy.pub").write_bytes(pub.read_bytes().replace(b"cam-1", b"cam-9"))
    with pytest.raises(ConfigError, match=r"copy\.pub: key ed25519:\w+ is bound to camera 'cam-9', but .*cam-1\.key\.pub binds it"):
        load_trusted_keys(keys)
