"""The manifest: its schema, sections and fields, the YAML reader with line numbers and its
limits, problem messages that name file, line and field, and ``inputs``, the one hardened way
to read any file a user hands govrun. May import only ``errors`` and ``tools``' shared
contract (``tools.base``): everything else reads the manifest, not the other way.

The schema's names below load on first use, so that reading a file through ``inputs`` (as the
trace room does) does not import the schema.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "CHECK_KINDS",
    "NOT_SUPPORTED_YET",
    "PROVIDERS",
    "SUPPORTED_BUILTINS",
    "Manifest",
    "ModelConfig",
    "PolicyRule",
    "Predicate",
    "ToolSpec",
    "load_manifest",
    "manifest_from_snapshot",
    "manifest_json_schema",
    "parse_manifest",
]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'govrun.runtime.manifest' has no attribute {name!r}")
    value = getattr(importlib.import_module("govrun.runtime.manifest.schema"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
