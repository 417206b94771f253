"""Ed25519 signatures for approval records and trace seals.

What is signed is a domain-separated, canonical byte string built from named fields, so a
signature can neither be replayed as another kind of record nor survive a change to any
field it covers. An approval covers the run, step, call, the hash of the exact call, the
hash of the policy in force, the decision and how it was reached; a seal covers the run
id, the event count, the head hash and the stated outcome, so cutting events off the end,
re-chaining an edited trace, or editing the outcome is detected without the seal key.

A key that only the trace itself carries proves integrity, not identity: only a public
key pinned outside the trace (``verify --trusted-keys``) says *who* signed.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from govrun.runtime.errors import GovrunError
from govrun.runtime.manifest.inputs import SIGNING_KEY, TRUSTED_KEYS, read_text
from govrun.runtime.trace.canonical import canonical

APPROVAL_FIELDS = (
    "run_id",
    "step",
    "call_id",
    "tool",
    "call_hash",
    "policy_hash",
    "decision",
    "via",
    "approver",
    "reason",
    "decided_at",
)
"""The fields of an ``approval_decided`` event that its signature covers."""

SEAL_FIELDS = (
    "run_id",
    "event_count",
    "head",
    "status",
    "failure_class",
    "reason",
    "steps",
    "final_answer",
    "totals",
)
"""The fields of a ``run_finished`` event that its seal covers: where the trace ends, and
the outcome it states (the last event's hash is referenced by nothing after it, so
without this an edited outcome could be re-hashed unnoticed)."""

_APPROVAL_DOMAIN = b"govrun-approval-v1\n"
_SEAL_DOMAIN = b"govrun-seal-v1\n"
KEY_FILE = "approver.ed25519"


def approval_message(fields: Mapping[str, Any]) -> bytes:
    """The exact bytes an approval signature covers."""
    return _APPROVAL_DOMAIN + canonical({k: fields.get(k) for k in APPROVAL_FIELDS})


def seal_message(fields: Mapping[str, Any]) -> bytes:
    """The exact bytes a trace seal covers."""
    return _SEAL_DOMAIN + canonical({k: fields.get(k) for k in SEAL_FIELDS})


def fingerprint(public_key_b64: str) -> str:
    """``sha256:<hex>`` of the raw 32-byte public key: what people compare and pin."""
    return "sha256:" + hashlib.sha256(base64.b64decode(public_key_b64)).hexdigest()


@dataclass(frozen=True)
class Signer:
    """A private key and where it came from (``file`` or ``ephemeral``)."""

    key: Ed25519PrivateKey
    source: str

    @property
    def public_key(self) -> str:
        raw = self.key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return base64.b64encode(raw).decode()

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_key)

    def sign(self, message: bytes) -> str:
        return base64.b64encode(self.key.sign(message)).decode()

    @classmethod
    def ephemeral(cls) -> Signer:
        """A key for one run, for when the user has none: its signatures prove the trace
        was not altered after the run, not who approved."""
        return cls(Ed25519PrivateKey.generate(), "ephemeral")

    @classmethod
    def load(cls, path: str | Path) -> Signer:
        path = Path(path)
        data = read_text(path, SIGNING_KEY).encode()
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise GovrunError(
                f"{path}: the signing key is not an unencrypted PEM private key",
                hint=SIGNING_KEY.hint,
            ) from None
        if not isinstance(key, Ed25519PrivateKey):
            raise GovrunError(
                f"{path}: the signing key is a {type(key).__name__}, not an Ed25519 key",
                hint=SIGNING_KEY.hint,
            )
        return cls(key, f"file:{path}")


def verify_signature(public_key_b64: str, message: bytes, signature_b64: str) -> bool:
    """True only for a well-formed key and signature that match ``message``."""
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64, validate=True))
        key.verify(base64.b64decode(signature_b64, validate=True), message)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


# --- where keys live ---------------------------------------------------------------------


def config_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$GOVRUN_HOME``, else ``$XDG_CONFIG_HOME/govrun``, else ``~/.config/govrun``."""
    env = os.environ if env is None else env
    if env.get("GOVRUN_HOME"):
        return Path(env["GOVRUN_HOME"])
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "govrun"


def default_key_path(env: Mapping[str, str] | None = None) -> Path:
    return config_dir(env) / "keys" / KEY_FILE


def init_key(path: Path, *, force: bool = False) -> Signer:
    """Create a key pair: private key 0600 in a 0700 folder, public key beside it."""
    if path.exists() and not force:
        raise GovrunError(
            f"{path} already exists; keep it, or pass --force to replace it "
            "(approvals signed with the old key will no longer match it)."
        )
    if not path.parent.exists():  # only a folder made for the key is made private
        path.parent.mkdir(parents=True, mode=0o700)
        os.chmod(path.parent, 0o700)
    signer = Signer(Ed25519PrivateKey.generate(), f"file:{path}")
    pem = signer.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)  # a stale one from an interrupted init
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    path.with_name(path.name + ".pub").write_text(trusted_key_line(signer) + "\n")
    return signer


def load_default_signer(env: Mapping[str, str] | None = None) -> Signer | None:
    """The user's key if `govrun keys init` made one, else None. A key file readable by
    others is refused: anyone could then sign as this approver."""
    path = default_key_path(env)
    if not path.exists():
        return None
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise GovrunError(
            f"signing key {path} is readable by others (mode {mode:o}).",
            hint=f"Fix it with: chmod 600 {path}",
        )
    return Signer.load(path)


def trusted_key_line(signer: Signer, comment: str | None = None) -> str:
    """One line of a trusted-keys file: ``<base64 public key> <fingerprint> [comment]``."""
    parts = [signer.public_key, signer.fingerprint]
    if comment:
        parts.append(comment)
    return " ".join(parts)


def load_trusted_keys(path: str | Path) -> dict[str, str]:
    """A trusted-keys file: one key per line (base64 public key or ``sha256:`` fingerprint,
    then an optional comment naming its owner); ``#`` starts a comment line.
    Returns fingerprint -> owner comment."""
    path = Path(path)
    text = read_text(path, TRUSTED_KEYS)
    keys: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        first, _, rest = line.partition(" ")
        if first.startswith("sha256:") and len(first) == 71:
            fp = first
        else:
            try:
                if len(base64.b64decode(first, validate=True)) != 32:
                    raise ValueError
            except ValueError:
                raise GovrunError(
                    f"{path}:{number}: expected a base64 Ed25519 public key or "
                    f"a sha256: fingerprint; got {first[:40]!r}"
                ) from None
            fp = fingerprint(first)
        comment = rest.strip()
        if comment.startswith("sha256:"):
            comment = comment.partition(" ")[2].strip()
        keys[fp] = comment or fp
    return keys
