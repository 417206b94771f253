"""`govrun validate` and `govrun schema` through the real typer app (CliRunner), on the
bundled fixtures. Each invalid fixture states on its first line what validate must say
(``# expect: LINE:COL field: message``); structural ones also say ``# schema: reject``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from typer.testing import CliRunner

from govrun.cli.main import app
from govrun.runtime.manifest.reader import interpolate, load_yaml
from tests.support import cli as cli_support
from tests.support.cli import ENV, Ran

REPO = Path(__file__).resolve().parent.parent
AGENTS = Path("fixtures/agents")  # relative to REPO: what a user types, and short in output
VALID = sorted(p.relative_to(REPO) for p in (REPO / AGENTS).glob("*.yaml"))
INVALID = sorted(p.relative_to(REPO) for p in (REPO / AGENTS / "invalid").glob("*.yaml"))


def govrun(*args: object) -> Ran:
    return cli_support.govrun(*args, env={"GOVRUN_TEST_UNSET_URL": None})


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)


def directives(path: Path) -> dict[str, str]:
    """The ``# expect:`` / ``# schema:`` comment lines at the top of a fixture."""
    found: dict[str, str] = {}
    for line in (REPO / path).read_text().splitlines():
        match = re.match(r"# (expect|schema): (.*)$", line)
        if not match:
            break
        found[match.group(1)] = match.group(2).strip()
    return found


def expanded(path: Path, env: dict[str, str]) -> Any:
    """The fixture as plain data after ${VAR} interpolation: what the schema describes."""
    loaded = load_yaml((REPO / path).read_text(), str(path))
    return interpolate(loaded.data, loaded.source_map, env).data


def test_fixture_lists_are_not_empty() -> None:
    assert {p.name for p in VALID} >= {"minimal.yaml", "realistic.yaml", "quickstart.yaml"}
    assert len(INVALID) >= 20
    assert all("expect" in directives(p) for p in INVALID), "every invalid fixture says why"


# --- validate ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_validate_valid_fixture(path: Path) -> None:
    ran = govrun("validate", path)
    assert ran.code == 0, ran.flat
    lines = ran.out.strip().splitlines()
    assert len(lines) == 1, ran.out
    assert lines[0].startswith("✓ ")
    assert f"{path} is a valid govrun manifest" in lines[0]
    assert ran.err == ""


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_validate_invalid_fixture(path: Path) -> None:
    expect = directives(path)["expect"]
    ran = govrun("validate", path)
    assert ran.code == 2, ran.flat
    # file:line:col field: expectation, exactly as the fixture states it
    assert f"{path}:{expect}" in ran.flat, f"expected {path}:{expect!r} in:\n{ran.flat}"
    assert re.search(r"is not (a )?valid (govrun manifest|YAML)", ran.flat), ran.flat
    assert "✓" not in ran.flat


def test_validate_missing_file() -> None:
    ran = govrun("validate", "fixtures/agents/no-such-agent.yaml")
    assert ran.code == 2
    assert "fixtures/agents/no-such-agent.yaml: no such manifest" in ran.flat
    assert ran.out == ""  # the error goes to stderr


def test_validate_a_folder_is_a_clear_error(tmp_path: Path) -> None:
    ran = govrun("validate", tmp_path)
    assert ran.code == 2
    assert str(tmp_path) in ran.flat


def test_validate_without_argument_is_usage_error() -> None:
    ran = govrun("validate")
    assert ran.code == 2
    assert "Missing argument" in ran.flat


# --- schema manifest ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def manifest_validator() -> jsonschema.Draft202012Validator:
    ran = Ran(CliRunner().invoke(app, ["schema", "manifest"], env=ENV))
    assert ran.code == 0, ran.flat
    schema = json.loads(ran.out)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "govrun manifest"
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_schema_defaults_to_manifest(
    manifest_validator: jsonschema.Draft202012Validator,
) -> None:
    ran = govrun("schema")
    assert ran.code == 0
    assert json.loads(ran.out) == manifest_validator.schema


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_schema_accepts_valid_fixture(
    path: Path, manifest_validator: jsonschema.Draft202012Validator
) -> None:
    data = expanded(path, env={"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"})
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in manifest_validator.iter_errors(data)]
    assert errors == []


STRUCTURAL = [p for p in INVALID if directives(p).get("schema") == "reject"]


def test_there_are_structural_fixtures() -> None:
    assert len(STRUCTURAL) >= 5


@pytest.mark.parametrize("path", STRUCTURAL, ids=lambda p: p.name)
def test_schema_rejects_structural_fixture(
    path: Path, manifest_validator: jsonschema.Draft202012Validator
) -> None:
    assert list(manifest_validator.iter_errors(expanded(path, env={}))), path


# --- schema events -----------------------------------------------------------------------


def test_schema_events_validates_every_line_of_the_complete_trace() -> None:
    ran = govrun("schema", "events")
    assert ran.code == 0, ran.flat
    schema = json.loads(ran.out)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    lines = (REPO / "fixtures/traces/complete.jsonl").read_text().splitlines()
    assert len(lines) == 39
    types = set()
    for number, line in enumerate(lines, start=1):
        event = json.loads(line)
        errors = [e.message for e in validator.iter_errors(event)]
        assert errors == [], f"line {number} ({event['type']}): {errors}"
        types.add(event["type"])
    assert {"run_started", "policy_decision", "tool_finished", "run_finished"} <= types
    # and it is a real schema, not `{}`: an unknown type or a missing field fails it
    assert list(validator.iter_errors({**json.loads(lines[0]), "type": "bogus"}))
    started = json.loads(lines[0])
    del started["agent"]
    assert list(validator.iter_errors(started))


def test_schema_bogus_kind() -> None:
    ran = govrun("schema", "bogus")
    assert ran.code == 2
    assert "bogus" in ran.flat
    assert "manifest" in ran.flat and "events" in ran.flat  # says what exists
    assert ran.out == ""
