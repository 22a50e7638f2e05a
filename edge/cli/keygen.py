"""`edge keygen`: make a camera's Ed25519 signing key, or a secret key for a pseudonymised feed."""

from __future__ import annotations

import argparse
import base64
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.config import check_camera_id, load_camera_config
from edge.errors import ConfigError
from edge.privacy import signing_key_path
from edge.signing import Signer, public_key_path, write_private_key, write_public_key


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "keygen",
        help="create a camera signing key (or an HMAC key for a pseudonymised feed)",
        description="Create an Ed25519 signing key (PEM, mode 0600) and its public key (FILE.pub, for the back "
        "office's trusted keys). The path is --out, or the config's [signing] key_file (by default <spool>/<camera>/signing.key), or <camera>.key here without --config. "
        "With --hmac FILE, create a random 32-byte secret for a pseudonymised feed instead. Never overwrites a file.",
    )
    p.add_argument("--config", metavar="FILE", help="camera TOML file: its camera id and key path are used")
    p.add_argument("--camera", metavar="ID", help="camera id (default: from --config)")
    p.add_argument("--out", metavar="FILE", type=Path, help="private key file to create")
    p.add_argument("--hmac", metavar="FILE", type=Path, help="create a secret key for a pseudonymised feed here")
    p.set_defaults(func=run)


def _create_hmac_key(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"{path}: cannot create HMAC key: {err.strerror}") from None
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(f"{path}: already exists; not overwritten (pseudonyms change with the key)") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot create HMAC key: {err.strerror}") from None
    try:
        with os.fdopen(fd, "w") as f:
            f.write(base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
            f.flush()
            os.fsync(f.fileno())
    except OSError as err:
        path.unlink(missing_ok=True)  # an empty or short key would stop the camera at its next start
        raise ConfigError(f"{path}: cannot write HMAC key: {err.strerror}") from None
    print(f"created HMAC key {path} (mode 0600); name it as hmac_key_file of the pseudonymised feed")


def run(args: argparse.Namespace) -> int:
    if args.hmac:
        _create_hmac_key(args.hmac)
        return 0
    cfg = load_camera_config(args.config) if args.config else None
    camera = args.camera or (cfg.camera.id if cfg else None)
    if camera is None:
        raise ConfigError("give --camera ID or --config FILE")
    try:
        check_camera_id(camera)
    except ValueError as err:  # the id names the key file and the reads' topic: refuse it as usage, not a traceback
        raise ConfigError(f"--camera: {err}") from None
    path = args.out or (signing_key_path(cfg) if cfg else Path(f"{camera}.key"))
    if path.exists():
        raise ConfigError(f"{path}: already exists; not overwritten (reads signed with it could no longer be checked)")
    key = Ed25519PrivateKey.generate()
    try:
        write_private_key(path, key)
    except OSError as err:
        raise ConfigError(f"{path}: cannot create signing key: {err.strerror}") from None
    try:
        write_public_key(public_key_path(path), key.public_key(), camera)
    except OSError as err:
        path.unlink(missing_ok=True)  # a key whose public half nobody has would sign reads no one can check
        raise ConfigError(f"{public_key_path(path)}: cannot write public key: {err.strerror}; no key was made") from None
    signer = Signer(key, camera, path)
    print(f"camera:      {camera}")
    print(f"private key: {path} (mode 0600; keep it on the camera)")
    print(f"public key:  {public_key_path(path)} (copy to the back office's trusted keys folder)")
    print(f"key id:      {signer.key_id}")
    print(f"fingerprint: {signer.fingerprint}")
    return 0
