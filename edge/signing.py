"""Ed25519 keys per camera, signing records, and checking records and their images.

A camera signs every record it publishes with its own key, so a back office can tell
a read really came from that camera and was not changed on the way. The signature
covers `edge.record.canonical_bytes(record)`, which includes each image's SHA-256,
so the images are covered too without being part of the signed bytes.

Key files are PEM (PKCS#8, unencrypted: the camera must start unattended) and must
not be readable by group or others; a `.pub` file (PEM public key) is written beside
a new key for the back office's trusted-key folder (`edge verify --keys DIR`). Its first
line, `edge-anpr camera: ID`, binds the key to its camera: a trusted key verifies only
reads that claim that camera.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import stat
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edge.errors import ConfigError
from edge.record import SIGNATURE_FIELD, canonical_bytes, sha256_hex

log = logging.getLogger(__name__)

ALG = "Ed25519"
CAMERA_LINE = "edge-anpr camera:"  # first line of a .pub file: the camera whose key it is


def raw_public_key(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id_of(public_raw: bytes) -> str:
    """`ed25519:` and 16 hex digits of the SHA-256 of the raw public key: short, and bound to the key."""
    return "ed25519:" + hashlib.sha256(public_raw).hexdigest()[:16]


def fingerprint_of(public_raw: bytes) -> str:
    """The full SHA-256 fingerprint, in the form ssh uses, to compare a key read aloud or in a log."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(public_raw).digest()).decode().rstrip("=")


def _check_private_mode(path: Path) -> None:
    if os.name != "posix":  # pragma: no cover - the engine runs on Linux
        return
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"{path}: signing key is accessible to group or others (mode {stat.S_IMODE(mode):04o}); "
            f"anyone who can read it can forge this camera's reads. Run: chmod 600 {path}"
        )


def write_private_key(path: Path, key: Ed25519PrivateKey) -> None:
    """Write a key as PEM with mode 0600 from the first byte (never world-readable, even briefly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
    except OSError:
        path.unlink(missing_ok=True)  # a half-written key would stop every later start
        raise


def write_public_key(path: Path, key: Ed25519PublicKey, camera_id: str | None = None) -> None:
    """PEM public key; with `camera_id`, a first line binds it to that camera (see `load_trusted_keys`).

    Text before the PEM block is allowed by RFC 7468 and ignored by PEM readers.
    """
    head = f"{CAMERA_LINE} {camera_id}\n".encode("utf-8") if camera_id else b""
    path.write_bytes(head + key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


def camera_of_public_key(pem: bytes) -> str | None:
    """The camera a .pub file is bound to (its `edge-anpr camera: ID` line before the PEM block), if any."""
    before = pem.split(b"-----BEGIN", 1)[0].decode("utf-8", errors="replace")
    for line in before.splitlines():
        if line.startswith(CAMERA_LINE):
            return line[len(CAMERA_LINE):].strip() or None
    return None


def public_key_path(private_path: Path) -> Path:
    return private_path.with_name(private_path.name + ".pub")


class Signer:
    """One camera's signing key."""

    def __init__(self, private_key: Ed25519PrivateKey, camera_id: str, path: Path | None = None) -> None:
        self._key = private_key
        self.camera_id = camera_id
        self.path = path
        self.public_raw = raw_public_key(private_key.public_key())
        self.key_id = key_id_of(self.public_raw)
        self.fingerprint = fingerprint_of(self.public_raw)
        self.public_key_b64 = base64.b64encode(self.public_raw).decode()

    @classmethod
    def generate(cls, camera_id: str) -> Signer:
        """A key held only in memory (tests, tools)."""
        return cls(Ed25519PrivateKey.generate(), camera_id)

    @classmethod
    def load(cls, path: Path, camera_id: str) -> Signer:
        """Load an existing key file; refuses one that group or others may read."""
        path = Path(path)
        try:
            data = path.read_bytes()  # first: a folder given as the key must not be told to chmod 600
            _check_private_mode(path)
        except OSError as err:
            raise ConfigError(f"{path}: cannot read signing key: {err.strerror}") from None
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as err:
            raise ConfigError(f"{path}: not an unencrypted PEM private key: {err}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError(f"{path}: signing key must be Ed25519, got {type(key).__name__}")
        return cls(key, camera_id, path)

    @classmethod
    def load_or_create(cls, path: Path, camera_id: str) -> Signer:
        """The camera's key; created (0600, with a .pub beside it) when the file does not exist yet."""
        path = Path(path)
        if path.exists():
            signer = cls.load(path, camera_id)
            log.info("signing key %s loaded from %s (fingerprint %s)", signer.key_id, path, signer.fingerprint)
            return signer
        key = Ed25519PrivateKey.generate()
        try:
            write_private_key(path, key)
        except FileExistsError:  # another process created it between our check and our write
            return cls.load(path, camera_id)
        except OSError as err:
            raise ConfigError(f"{path}: cannot create signing key: {err.strerror}") from None
        try:
            write_public_key(public_key_path(path), key.public_key(), camera_id)
        except OSError as err:  # the private key is whole, so the camera can sign; every read carries the public key
            log.error("%s: cannot write the public key (%s); every signed read carries it", public_key_path(path), err.strerror)
        signer = cls(key, camera_id, path)
        log.warning(
            "created signing key %s for camera %s at %s; give %s to the back office (fingerprint %s)",
            signer.key_id, camera_id, path, public_key_path(path), signer.fingerprint,
        )
        return signer

    def sign(self, record: dict[str, Any]) -> dict[str, Any]:
        """A copy of the record with a "signature" over its canonical form (an existing signature is replaced)."""
        unsigned = {k: v for k, v in record.items() if k != SIGNATURE_FIELD}
        value = self._key.sign(canonical_bytes(unsigned))
        unsigned[SIGNATURE_FIELD] = {
            "alg": ALG,
            "key_id": self.key_id,
            "public_key": self.public_key_b64,
            "value": base64.b64encode(value).decode(),
        }
        return unsigned


class TrustedKeys(dict):
    """key id -> raw public key (a plain dict to callers), plus the camera each key is bound to, where its file says."""

    def __init__(self) -> None:
        super().__init__()
        self.cameras: dict[str, str] = {}


def load_trusted_keys(folder: Path) -> TrustedKeys:
    """key id -> raw public key, from every `*.pub` (PEM) file in a folder.

    A file whose first line is `edge-anpr camera: ID` (as `edge keygen` and a camera's first
    start write it) binds its key to that camera: a read signed with it that claims another
    camera does not verify. Without it, a key signs for any camera id (older .pub files).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"{folder}: trusted keys folder not found")
    keys = TrustedKeys()
    bound_in: dict[str, Path] = {}
    for path in sorted(folder.glob("*.pub")):
        try:
            data = path.read_bytes()
            key = serialization.load_pem_public_key(data)
        except OSError as err:
            raise ConfigError(f"{path}: cannot read trusted key: {err.strerror}") from None
        except ValueError as err:
            raise ConfigError(f"{path}: not a PEM public key: {err}") from None
        if not isinstance(key, Ed25519PublicKey):
            raise ConfigError(f"{path}: trusted key must be Ed25519, got {type(key).__name__}")
        raw = raw_public_key(key)
        key_id = key_id_of(raw)
        keys[key_id] = raw
        camera = camera_of_public_key(data)
        if camera is not None:
            if keys.cameras.get(key_id, camera) != camera:
                raise ConfigError(f"{path}: key {key_id} is bound to camera {camera!r}, but {bound_in[key_id]} binds it "
                                  f"to camera {keys.cameras[key_id]!r}")
            keys.cameras[key_id], bound_in[key_id] = camera, path
    if not keys:
        raise ConfigError(f"{folder}: no *.pub public keys in the trusted keys folder")
    return keys


def _b64(value: Any, what: str, problems: list[str]) -> bytes | None:
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        problems.append(f"{what} is not valid base64")
        return None


def verify_signature(record: dict[str, Any], trusted_keys: dict[str, bytes] | None = None) -> list[str]:
    """Problems with the record's signature; [] when it verifies.

    With `trusted_keys`, only those keys are accepted (authenticity). Without, the key
    the record names is used: that proves the record is intact, not who made it.
    """
    sig = record.get(SIGNATURE_FIELD)
    if not isinstance(sig, dict):
        return ["record is not signed (no 'signature' object)"]
    problems: list[str] = []
    if sig.get("alg") != ALG:
        problems.append(f"signature.alg is {sig.get('alg')!r}, expected {ALG!r}")
    key_id = str(sig.get("key_id", ""))
    named = _b64(sig.get("public_key", ""), "signature.public_key", problems)
    value = _b64(sig.get("value", ""), "signature.value", problems)
    if problems:
        return problems
    assert named is not None and value is not None
    if len(named) != 32:
        return [f"signature.public_key is {len(named)} bytes, an Ed25519 key is 32"]
    if key_id_of(named) != key_id:
        problems.append(f"signature.key_id {key_id!r} does not match signature.public_key (that key's id is {key_id_of(named)})")
    if trusted_keys is not None:
        trusted = trusted_keys.get(key_id)
        if trusted is None:
            return problems + [f"signing key {key_id} is not among the trusted keys"]
        if trusted != named:
            return problems + [f"signature.public_key differs from the trusted key {key_id}"]
        camera = getattr(trusted_keys, "cameras", {}).get(key_id)
        if camera is not None and record.get("camera_id") != camera:
            # A trusted key is trusted for its own camera: one camera's key must not vouch for another's reads.
            return problems + [f"signed with camera {camera!r}'s key {key_id}, but the read claims camera_id "
                               f"{record.get('camera_id')!r}"]
    try:
        Ed25519PublicKey.from_public_bytes(named).verify(value, canonical_bytes(record))
    except InvalidSignature:
        problems.append("signature does not match the record (a signed field was changed, added or removed)")
    except ValueError as err:
        problems.append(f"cannot check signature: {err}")
    return problems


def verify_images(record: dict[str, Any], images: dict[str, bytes]) -> list[str]:
    """Problems with the images given for a record: unknown kinds, wrong hashes, wrong sizes."""
    declared = record.get("images") or {}
    problems = []
    for kind, data in sorted(images.items()):
        entry = declared.get(kind)
        if not isinstance(entry, dict):
            problems.append(f"image {kind!r} is not listed under the record's 'images'")
            continue
        digest = sha256_hex(data)
        if digest != entry.get("sha256"):
            problems.append(f"image {kind!r}: SHA-256 {digest[:16]}… differs from the record's {str(entry.get('sha256'))[:16]}…")
        elif entry.get("bytes") not in (None, len(data)):
            problems.append(f"image {kind!r}: {len(data)} bytes, the record says {entry.get('bytes')}")
    return problems


def verify_record(
    record: dict[str, Any], images: dict[str, bytes] | None = None, trusted_keys: dict[str, bytes] | None = None
) -> list[str]:
    """Everything wrong with a record and (when given) its images; [] means it verifies.

    Images listed in the record but not given are not checked here (a caller that
    needs them, like `edge verify --require-images`, checks for them itself).
    """
    problems = verify_signature(record, trusted_keys)
    if images:
        problems += verify_images(record, images)
    return problems
