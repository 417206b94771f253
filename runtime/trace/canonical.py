"""The one canonical JSON form and the hashes made from it.

A trace line, a prompt, a manifest snapshot and a call are all hashed over this form:
orjson with sorted keys, no whitespace. Sidecar blob references are recognised here too,
since the writer makes them and every reader resolves them.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import orjson

_SORT = orjson.OPT_SORT_KEYS

_BLOB_KEY = "$blob"
_BLOB_MARK = b'"$blob"'
_BLOB_REF = re.compile(r"[0-9a-f]{64}")

MAX_LINE_BYTES = 16 << 20
"""The longest line a trace holds: the writer refuses a longer event and readers take a
longer first line for a file that is not a trace. Strings over 64 KiB go to the sidecar
folder and a manifest is at most 100,000 values, so a real event stays far below."""


def canonical(obj: Any) -> bytes:
    """The one canonical JSON form: orjson, sorted keys, no whitespace."""
    return orjson.dumps(obj, option=_SORT)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def blob_dir(trace_path: str | Path) -> Path:
    """Where a trace's sidecar blobs live: ``run.jsonl`` -> ``run.jsonl.blobs/``."""
    p = Path(trace_path)
    return p.with_name(p.name + ".blobs")


def call_hash(tool: str, arguments: Any, step: int) -> str:
    """SHA-256 naming one exact call: tool, canonical arguments and step."""
    return sha256_hex(canonical({"tool": tool, "arguments": arguments, "step": step}))
