"""The manifest: its schema, sections and fields, the YAML reader with line numbers, and
problem messages that name file, line and field. May import only ``errors`` and ``tools``'
shared contract (``tools.base``): everything else reads the manifest, not the other way."""

from govrun.runtime.manifest.schema import (
    CHECK_KINDS,
    NOT_SUPPORTED_YET,
    PROVIDERS,
    SUPPORTED_BUILTINS,
    Manifest,
    ModelConfig,
    PolicyRule,
    Predicate,
    ToolSpec,
    load_manifest,
    manifest_from_snapshot,
    manifest_json_schema,
    parse_manifest,
)

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
