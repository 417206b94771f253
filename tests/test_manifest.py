"""The manifest loader: real fixture files, real env mappings, no mocks.

Each invalid fixture states the problem it must produce on its first line
(``# expect: LINE:COL FIELD: message``), so fixtures and tests cannot drift apart.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from govrun.runtime.errors import ManifestError
from govrun.runtime.manifest.reader import interpolate, load_yaml
from govrun.runtime.manifest.schema import (
    CHECK_KINDS,
    NOT_SUPPORTED_YET,
    SUPPORTED_BUILTINS,
    Manifest,
    Predicate,
    load_manifest,
    manifest_json_schema,
    parse_manifest,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
AGENTS = FIXTURES / "agents"
VALID = sorted(AGENTS.glob("*.yaml"))
INVALID = sorted((AGENTS / "invalid").glob("*.yaml"))
OPENAI = "model: {provider: openai, name: gpt-4o-mini}\n"


def problems_of(text: str, env: dict[str, str] | None = None, **kwargs: Any) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(text, source="agent.yaml", env=env or {}, **kwargs)
    return caught.value.problems


def only_problem(text: str, env: dict[str, str] | None = None) -> str:
    problems = problems_of(text, env)
    assert len(problems) == 1, problems
    return problems[0]


def fixture_directives(path: Path) -> dict[str, str]:
    """``# key: value`` comment lines at the top of a fixture."""
    found: dict[str, str] = {}
    for line in path.read_text().splitlines():
        match = re.match(r"# (expect|schema): (.*)$", line)
        if not match:
            break
        found[match.group(1)] = match.group(2)
    return found


def expanded_data(path: Path, env: dict[str, str]) -> Any:
    """The fixture as plain data after ${VAR} interpolation (what the schema describes)."""
    loaded = load_yaml(path.read_text(), str(path))
    return interpolate(loaded.data, loaded.source_map, env).data


# --- fixtures ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_valid_fixture_loads(path: Path) -> None:
    manifest = load_manifest(path, env={})
    assert isinstance(manifest, Manifest)
    assert manifest.base_dir == AGENTS


def test_realistic_fixture_exercises_every_supported_feature() -> None:
    manifest = load_manifest(AGENTS / "realistic.yaml", env={})
    checks = [c.check for tool in manifest.tools for c in tool.verify]
    checks += [c.check for c in manifest.success]
    assert set(checks) == set(CHECK_KINDS)
    assert {tool.uses for tool in manifest.tools if tool.uses} == set(SUPPORTED_BUILTINS)
    assert any(tool.python for tool in manifest.tools)
    predicates = [p for rule in manifest.policy.rules for p in rule.when.values()]
    used = set().union(*(p.model_fields_set for p in predicates))
    assert used == set(Predicate.model_fields)
    assert manifest.model.base_url == "http://127.0.0.1:11434/v1"
    assert manifest.model.pricing is not None
    interrupts = manifest.interrupts
    assert interrupts.repeat_call and interrupts.argument_size and interrupts.forbidden_sequences
    assert all(v is not None for v in manifest.budgets.model_dump().values())
    assert manifest.secrets == ["GITHUB_TOKEN"]
    approvals = manifest.approvals
    assert approvals.identity and approvals.timeout_s
    assert set(approvals.on_timeout.model_dump().values()) == {"approve", "reject"}
    assert {tool.approval for tool in manifest.tools} == {"policy", "always"}
    assert manifest.on_failure == "rollback"
    assert manifest.workspace is not None and manifest.workspace.template == "triage"


def test_approvals_are_supported() -> None:
    """`approvals:` and per-tool `approval:` landed: no longer reserved."""
    assert "approvals" not in NOT_SUPPORTED_YET
    assert "tools[].approval" not in NOT_SUPPORTED_YET
    text = (
        f"name: x\n{OPENAI}tools: [{{name: t, uses: fs.write, scope: {{roots: [x]}}, "
        "approval: always}]\napprovals: {identity: alice, timeout_s: 30, on_timeout: approve}\n"
    )
    manifest = parse_manifest(text, env={})
    assert manifest.tools[0].approval == "always"
    assert manifest.approvals.on_timeout.high == "approve"


def test_there_is_an_invalid_fixture_per_common_mistake() -> None:
    assert len(INVALID) >= 12
    assert all("expect" in fixture_directives(path) for path in INVALID)


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_invalid_fixture_reports_its_expected_problem(path: Path) -> None:
    expect = fixture_directives(path)["expect"]
    source = str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)
    with pytest.raises(ManifestError) as caught:
        load_manifest(source, env={})
    problems = caught.value.problems
    assert any(p.startswith(f"{source}:{expect}") for p in problems), problems


# --- error messages ----------------------------------------------------------------------------


def test_message_counts_problems_and_names_the_file() -> None:
    text = "name: x\nmodel: {provider: openai}\nbudgets: {max_steps: 0}\n"
    with pytest.raises(ManifestError) as caught:
        parse_manifest(text, source="agent.yaml", env={})
    assert caught.value.message == "agent.yaml is not a valid govrun manifest (2 problems)"
    assert caught.value.problems == [
        "agent.yaml:2:1 model.name: required key 'name' is missing "
        "(provider openai needs a model, e.g. gpt-4o-mini)",
        "agent.yaml:3:11 budgets.max_steps: expected a number greater than 0; got 0",
    ]


def test_all_problems_are_reported_at_once_sorted_by_line() -> None:
    text = (
        "name: all-at-once\n"
        "durability: sometimes\n"
        f"{OPENAI}"
        "tools:\n"
        "  - {name: a, uses: fs.raed, scope: {roots: [x]}}\n"
        "  - {name: b, uses: shell, scope: {roots: [x]}}\n"
        "budgets: {max_steps: lots}\n"
        "succes: []\n"
    )
    problems = problems_of(text)
    assert [p.split(" ")[0] for p in problems] == [
        "agent.yaml:2:1",
        "agent.yaml:5:15",
        "agent.yaml:6:28",
        "agent.yaml:7:11",
        "agent.yaml:8:1",
    ]
    assert "did you mean 'fs.read'?" in problems[1]
    assert "tools[1].scope.commands: required key 'commands' is missing" in problems[2]
    assert "unknown key 'succes'; did you mean 'success'?" in problems[4]


def test_unknown_key_without_a_close_match_lists_valid_keys() -> None:
    problem = only_problem(f"name: x\n{OPENAI}budgets: {{zzz: 1}}\n")
    assert problem.startswith("agent.yaml:3:11 budgets.zzz: unknown key 'zzz'; expected one of ")
    assert "max_steps, max_model_calls" in problem


def test_union_errors_are_one_problem_without_pydantic_internals() -> None:
    text = f"name: x\n{OPENAI}success:\n  - {{check: file_exists, paht: a.md}}\n"
    problems = problems_of(text)
    assert problems == [
        "agent.yaml:4:5 success[0].path: required key 'path' is missing",
        "agent.yaml:4:26 success[0].paht: unknown key 'paht'; did you mean 'path'?",
    ]


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        ("tools: {read: {uses: fs.read}}", "tools: expected a list; got a mapping (list items"),
        ("secrets: GITHUB_TOKEN", "secrets: expected a list; got 'GITHUB_TOKEN'"),
        ("budgets: {max_cost_usd: cheap}", "max_cost_usd: expected a number; got 'cheap'"),
        ("budgets: {max_steps: true}", "max_steps: expected a number; got true"),
        ("budgets: {max_steps: 1.5}", "max_steps: expected an integer; got 1.5"),
        ("system: [a]", "system: expected text; got a list"),
        ("interrupts: {forbidden_sequences: [{id: s, sequence: [x]}]}", "at least 2 entries"),
        ("version: 2", "version: expected 1; got 2"),
    ],
)
def test_type_errors_read_expected_then_got(snippet: str, expected: str) -> None:
    assert expected in only_problem(f"name: x\n{OPENAI}{snippet}\n")


def test_builtin_and_provider_names_get_a_did_you_mean() -> None:
    problem = only_problem("name: x\nmodel: {provider: OpenAI, name: m}\n")
    assert "expected one of openai, scripted; got 'OpenAI' — did you mean 'openai'?" in problem
    problem = only_problem(f"name: x\n{OPENAI}tools: [{{name: t, uses: htp.get}}]\n")
    assert "did you mean 'http.get'?" in problem


def test_pasted_api_key_is_refused_and_never_echoed() -> None:
    key = "sk-live-0123456789abcdefABCDEF"
    with pytest.raises(ManifestError) as caught:
        parse_manifest(f"name: x\nmodel: {{provider: openai, name: m, api_key_env: {key}}}\n")
    assert "put the key in an env var and name the var here" in str(caught.value)
    assert key not in str(caught.value)


def test_interpolated_values_are_quoted_as_written_in_errors() -> None:
    env = {"SECRET_URL": "hunter2-not-a-url"}
    text = "name: x\nmodel:\n  provider: openai\n  name: m\n  base_url: ${SECRET_URL}\n"
    problem = only_problem(text, env)
    assert "got '${SECRET_URL}'" in problem
    assert "hunter2" not in problem


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        (
            "  - {name: t, python: 'm:f', scope: {roots: [x]}}",
            "tools[0].scope.roots: expected no scope",
        ),
        ("  - {name: t}", "tools[0]: expected exactly one of `uses`"),
        (
            "  - {name: t, uses: shell, scope: {roots: [x], commands: {ls: {}}, hosts: [a.com]}}",
            "scope.hosts",
        ),
        ("  - {name: t, uses: shell, scope: {commands: {ls: {}}}}", "scope.roots"),
        ("  - {name: t, uses: http.get}", "required key 'hosts' is missing"),
        ("  - {name: 'bad name', uses: fs.read, scope: {roots: [x]}}", "expected a tool name"),
        (
            "  - {name: t, uses: fs.read, scope: {roots: [x]}, undo: 'rm x'}",
            "tools[0].undo: expected `undo` only on shell tools",
        ),
    ],
)
def test_tool_cross_field_rules(snippet: str, expected: str) -> None:
    assert expected in only_problem(f"name: x\n{OPENAI}tools:\n{snippet}\n")


def test_model_cross_field_rules(tmp_path: Path) -> None:
    assert "model.script: required key 'script' is missing" in only_problem(
        "name: x\nmodel: {provider: scripted}\n"
    )
    (tmp_path / "s.yaml").write_text("- content: hi\n")
    problem = problems_of("name: x\nmodel: {provider: openai, name: m, script: s.yaml}\n")
    assert "model.script: expected `script` only with provider scripted" in problem[0]


def test_references_to_undeclared_tools_are_errors() -> None:
    tools = "tools: [{name: fetch, uses: http.get, scope: {hosts: [a.com]}}]\n"
    text = (
        f"name: x\n{OPENAI}{tools}"
        "interrupts: {forbidden_sequences: [{id: s, sequence: [fetch, fecth]}]}\n"
    )
    assert "sequence[1]: expected a declared tool name or a glob" in only_problem(text)
    text = f"name: x\n{OPENAI}{tools}policy: {{rules: [{{id: r, tools: 'fs.*', effect: allow}}]}}\n"
    assert "policy.rules[0].tools[0]: " in only_problem(text)


def test_duplicate_rule_ids_point_at_the_second() -> None:
    rules = "  rules:\n    - {id: r, effect: allow}\n    - {id: r, effect: deny}\n"
    text = f"name: x\n{OPENAI}policy:\n{rules}"
    problem = only_problem(text)
    assert problem.startswith("agent.yaml:6:8 policy.rules[1].id: expected a unique id; got 'r'")


@pytest.mark.parametrize("key", ["reserved_section", "tools[].reserved_key"])
def test_not_supported_yet_sections_are_rejected(key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every reserved key has landed; the mechanism stays, for the next one."""
    monkeypatch.setitem(NOT_SUPPORTED_YET, key, f"`{key}` is not supported yet; remove it")
    if key.startswith("tools[]."):
        tool_key = key.removeprefix("tools[].")
        snippet = f"tools: [{{name: t, uses: fs.read, scope: {{roots: [x]}}, {tool_key}: {{}}}}]"
    else:
        snippet = f"{key}: {{}}"
    problem = only_problem(f"name: x\n{OPENAI}{snippet}\n")
    assert "not supported yet" in problem
    assert "unknown key" not in problem


# --- YAML ----------------------------------------------------------------------------------------


def test_yaml_syntax_error_has_line_and_column() -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest("name: x\nmodel:\n  provider: [openai\n", source="a.yaml")
    assert re.match(r"a\.yaml:\d+:\d+: YAML syntax error: ", caught.value.problems[0])


def test_tabs_get_a_hint() -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest("name: x\nmodel:\n\tprovider: openai\n", source="a.yaml")
    assert "indent with spaces, not tabs" in caught.value.problems[0]


def test_duplicate_keys_are_reported_even_when_otherwise_valid() -> None:
    problem = only_problem("name: x\nname: y\nmodel: {provider: openai, name: m}\n")
    assert problem.startswith("agent.yaml:2:1 name: duplicate key 'name' (first at line 1:1)")


def test_anchors_and_merge_keys_work() -> None:
    text = (
        f"name: x\n{OPENAI}"
        "tools:\n"
        "  - &reader {name: a, uses: fs.read, risk: low, scope: {roots: [docs]}}\n"
        "  - {<<: *reader, name: b}\n"
    )
    manifest = parse_manifest(text, env={})
    assert [(t.name, t.risk, t.scope.roots) for t in manifest.tools] == [
        ("a", "low", ["docs"]),
        ("b", "low", ["docs"]),
    ]


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        ("input: !env TASK", "input: expected a plain value (text, number, true/false, null); "),
        ("budgets: {max_steps: !!int ten}", "max_steps: expected a value of type !!int; got 'ten'"),
        ("secrets: !!set {A}", "secrets: expected a plain mapping or list; got YAML tag '!!set'"),
        ('system: "bell \\a"', ""),  # an escaped control character is fine
    ],
)
def test_yaml_tags_are_checked(snippet: str, expected: str) -> None:
    text = f"name: x\n{OPENAI}{snippet}\n"
    if expected:
        assert expected in only_problem(text)
    else:
        assert parse_manifest(text, env={}).system == "bell \a"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "agent.yaml is empty"),
        ("# only a comment\n", "agent.yaml is empty"),
        ("- name: x\n", "agent.yaml is not a valid govrun manifest (1 problem)"),
    ],
)
def test_empty_or_non_mapping_documents(text: str, message: str) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(text, source="agent.yaml")
    assert caught.value.message == message
    assert caught.value.problems[0].startswith("agent.yaml:1:1 (top level): expected a mapping")


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"missing\.yaml: no such manifest"):
        load_manifest(tmp_path / "missing.yaml")
    with pytest.raises(ManifestError, match="the manifest is a folder, not a file"):
        load_manifest(tmp_path)
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"name: \xff\xfe\n")
    with pytest.raises(ManifestError, match=r"manifest is not UTF-8 text \(byte 0xff at offset 6"):
        load_manifest(binary)


# --- ${ENV} interpolation ----------------------------------------------------------------------


def system_prompt(value: str, env: dict[str, str]) -> str:
    return parse_manifest(f"name: x\n{OPENAI}system: '{value}'\n", env=env).system


@pytest.mark.parametrize(
    ("value", "env", "expected"),
    [
        ("hi ${WHO}", {"WHO": "ann"}, "hi ann"),
        ("${A}${B}", {"A": "1", "B": "2"}, "12"),
        ("${WHO:-bob}", {}, "bob"),
        ("${WHO:-bob}", {"WHO": ""}, "bob"),
        ("${WHO:-bob}", {"WHO": "ann"}, "ann"),
        ("${WHO:-}", {}, ""),
        ("[${WHO}]", {"WHO": ""}, "[]"),
        ("costs $$${NOT}", {}, "costs $${NOT}"),
        ("literal $${WHO}", {"WHO": "ann"}, "literal ${WHO}"),
        ("just $5 and $HOME", {}, "just $5 and $HOME"),
    ],
)
def test_interpolation(value: str, env: dict[str, str], expected: str) -> None:
    assert system_prompt(value, env) == expected


def test_unset_variable_names_it_and_its_location() -> None:
    tool = "  - {name: t, uses: fs.read, scope: {roots: ['${ROOT}']}}\n"
    text = f"name: x\n{OPENAI}tools:\n{tool}"
    problem = only_problem(text)
    assert problem.startswith(
        "agent.yaml:4:46 tools[0].scope.roots[0]: expected environment variable ROOT to be set"
    )


def test_unquoted_interpolation_in_flow_style_gets_a_hint() -> None:
    problem = only_problem(f"name: x\n{OPENAI}secrets: [${{A}}]\n")
    assert "YAML syntax error" in problem
    assert problem.endswith("quote values that use ${VAR} inside [ ] or { }")


def test_keys_are_not_interpolated_and_numbers_can_be() -> None:
    env = {"STEPS": "7"}
    text = f"name: x\n{OPENAI}budgets: {{max_steps: '${{STEPS}}'}}\n"
    assert parse_manifest(text, env=env).budgets.max_steps == 7
    problem = only_problem(f"name: x\n{OPENAI}'${{KEY}}': 1\n", env={"KEY": "system"})
    assert "unknown key '${KEY}'" in problem


def test_env_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOVRUN_TEST_WHO", "from-os")
    text = f"name: x\n{OPENAI}system: ${{GOVRUN_TEST_WHO}}\n"
    assert parse_manifest(text).system == "from-os"


# --- secrets and snapshots ---------------------------------------------------------------------


def test_secret_env_names_and_values() -> None:
    text = "name: x\nsecrets: [GITHUB_TOKEN, EMPTY]\nmodel: {provider: openai, name: m}\n"
    manifest = parse_manifest(text, env={})
    assert manifest.model.api_key_env == "OPENAI_API_KEY"
    assert manifest.secret_env_names() == {"GITHUB_TOKEN", "EMPTY", "OPENAI_API_KEY"}
    env = {"GITHUB_TOKEN": "ghp_x", "EMPTY": "", "OPENAI_API_KEY": "sk-y", "OTHER": "z"}
    assert manifest.secret_values(env) == {"ghp_x", "sk-y"}


def test_secret_values_default_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOVRUN_TEST_TOKEN", "t0ken")
    manifest = parse_manifest(f"name: x\nsecrets: [GOVRUN_TEST_TOKEN]\n{OPENAI}", env={})
    assert "t0ken" in manifest.secret_values()


def test_canonical_dict_is_json_stable_and_keeps_secret_templates() -> None:
    text = (
        "name: x\nsecrets: [TOKEN]\n"
        "model: {provider: openai, name: m, base_url: 'https://${TOKEN}@llm.example/v1'}\n"
        "system: ${WHO}\n"
    )
    env = {"TOKEN": "s3cr3t", "WHO": "ann"}
    first = parse_manifest(text, env=env).canonical_dict()
    again = parse_manifest(text, env={"TOKEN": "rotated", "WHO": "ann"}).canonical_dict()
    assert first == again
    dumped = json.dumps(first, sort_keys=True)
    assert "s3cr3t" not in dumped
    assert first["model"]["base_url"] == "https://${TOKEN}@llm.example/v1"
    assert first["system"] == "ann"
    assert "description" not in first  # nulls are left out


def test_tool_lookup_and_glob_matching() -> None:
    manifest = load_manifest(AGENTS / "realistic.yaml", env={})
    assert manifest.tool("write_file") is not None
    assert manifest.tool("nope") is None
    assert [t.name for t in manifest.tools_matching("fs.*")] == [
        "read_file",
        "write_file",
        "list_dir",
        "delete_file",
    ]


# --- relative paths ----------------------------------------------------------------------------


def test_paths_resolve_against_the_manifest_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent_dir = tmp_path / "agent"
    (agent_dir / "scripts").mkdir(parents=True)
    (agent_dir / "scripts" / "s.yaml").write_text("- content: done\n")
    manifest_file = agent_dir / "agent.yaml"
    manifest_file.write_text("name: x\nmodel: {provider: scripted, script: scripts/s.yaml}\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    manifest = load_manifest("../agent/agent.yaml")
    assert manifest.base_dir == agent_dir.resolve()
    assert manifest.resolve_path(manifest.model.script or "").read_text() == "- content: done\n"


def test_missing_script_names_the_folder_it_looked_in(tmp_path: Path) -> None:
    (tmp_path / "agent.yaml").write_text("name: x\nmodel: {provider: scripted, script: s.yaml}\n")
    with pytest.raises(ManifestError) as caught:
        load_manifest(tmp_path / "agent.yaml")
    assert f"expected an existing file relative to {tmp_path.resolve()}; got 's.yaml'" in str(
        caught.value
    )


def test_parse_manifest_uses_base_dir(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text("- content: hi\n")
    text = "name: x\nmodel: {provider: scripted, script: s.yaml}\n"
    assert parse_manifest(text, base_dir=tmp_path).base_dir == tmp_path.resolve()


# --- JSON Schema -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = manifest_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_schema_header_and_stability() -> None:
    schema = manifest_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "govrun manifest"
    assert json.dumps(schema) == json.dumps(manifest_json_schema())
    assert list(schema) == sorted(schema)
    for keyword in ('"gt"', '"ge"', '"min_length"'):  # pydantic names that JSON Schema ignores
        assert keyword not in json.dumps(schema)


def test_schema_describes_approvals(validator: jsonschema.Draft202012Validator) -> None:
    defs = manifest_json_schema()["$defs"]
    assert set(defs["Approvals"]["properties"]) == {
        "mode",
        "identity",
        "timeout_s",
        "on_timeout",
        "trusted_keys",
        "notify",
    }
    assert defs["ToolSpec"]["properties"]["approval"]["enum"] == ["policy", "always"]
    base = {"name": "x", "model": {"provider": "openai", "name": "m"}}
    for on_timeout in ("reject", {"low": "approve"}):
        approvals = {"timeout_s": 5, "on_timeout": on_timeout}
        assert list(validator.iter_errors({**base, "approvals": approvals})) == []
    assert list(validator.iter_errors({**base, "approvals": {"on_timeout": "deny"}}))


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_schema_accepts_valid_fixtures(
    path: Path, validator: jsonschema.Draft202012Validator
) -> None:
    assert list(validator.iter_errors(expanded_data(path, env={}))) == []
    canonical = load_manifest(path, env={}).canonical_dict()
    assert list(validator.iter_errors(canonical)) == []


STRUCTURAL = [p for p in INVALID if fixture_directives(p).get("schema") == "reject"]


@pytest.mark.parametrize("path", STRUCTURAL, ids=lambda p: p.name)
def test_schema_rejects_structural_mistakes(
    path: Path, validator: jsonschema.Draft202012Validator
) -> None:
    assert list(validator.iter_errors(expanded_data(path, env={})))


def test_there_are_structural_invalid_fixtures() -> None:
    assert len(STRUCTURAL) >= 5


# --- robustness --------------------------------------------------------------------------------

KEYS = sorted(
    {"name", "model", "tools", "uses", "python", "scope", "roots", "check", "path", "when"}
    | {"policy", "rules", "effect", "tools", "budgets", "success", "verify", "schema"}
)
SCALARS = st.none() | st.booleans() | st.integers(-3, 99) | st.floats(allow_nan=False)
SCALARS |= st.sampled_from([*CHECK_KINDS, *SUPPORTED_BUILTINS, "fs.*", "[", "${X}", "openai"])
VALUES = st.recursive(
    SCALARS | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner),
    max_leaves=8,
)


REALISTIC = json.dumps(expanded_data(AGENTS / "realistic.yaml", env={}))
DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml only speeds the test up


@st.composite
def mutated_realistic(draw: st.DrawFn) -> Any:
    """The realistic fixture with one randomly chosen field replaced by a random value."""
    data = json.loads(REALISTIC)
    node = data
    while True:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        key = draw(st.sampled_from(keys)) if keys else None
        child = node[key] if key is not None else None
        if key is None or not isinstance(child, dict | list) or draw(st.booleans()):
            break
        node = child
    if key is not None:
        node[key] = draw(VALUES)
    return data


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_realistic())
def test_any_input_gives_a_manifest_or_located_problems(data: Any) -> None:
    text = yaml.dump(data, Dumper=DUMPER, sort_keys=False)
    try:
        parse_manifest(text, source="m.yaml", base_dir=AGENTS, env={})
    except ManifestError as error:
        assert error.problems
        assert all(re.match(r"m\.yaml:\d+:\d+ \S", p) for p in error.problems), error.problems


@pytest.mark.parametrize(
    "key",
    [
        "base_url: 'http://127.0.0.1:1/v1'",
        "api_key_env: KEY",
        "timeout_s: 5",
        "params: {temperature: 0}",
    ],
)
def test_scripted_provider_refuses_keys_it_would_ignore(tmp_path: Path, key: str) -> None:
    (tmp_path / "s.yaml").write_text("- content: hi\n")
    text = f"name: a\nmodel:\n  provider: scripted\n  script: s.yaml\n  {key}\n"
    with pytest.raises(ManifestError) as caught:
        parse_manifest(text, source="agent.yaml", base_dir=tmp_path)
    field = key.split(":")[0]
    assert caught.value.problems == [
        f"agent.yaml:5:3 model.{field}: expected no `{field}` with provider scripted (it "
        "answers from its script and would ignore it); remove it or use provider openai"
    ]


# --- real models (issue 20) ------------------------------------------------------------------


def test_model_params_for_real_endpoints_are_checked() -> None:
    text = (
        "name: x\nmodel:\n  provider: openai\n  name: m\n  params:\n"
        "    tool_choice: sometimes\n"
        "    response_format: {type: json_schema}\n"
        "    extra_body: {messages: [], top_k: 3}\n"
    )
    found = "\n".join(problems_of(text))
    assert (
        "model.params.tool_choice: expected one of auto, none, required; got 'sometimes'" in found
    )
    assert "expected `json_schema` (name and schema) with type json_schema" in found
    assert "got messages, which govrun sets itself" in found


@pytest.mark.parametrize(
    ("choice", "said"),
    [
        (
            "{type: function, function: {name: writ_file}}",
            "model.params.tool_choice.function.name: expected a declared tool name "
            "(write_file); got 'writ_file' — did you mean 'write_file'?",
        ),
        ("{type: tool, function: {name: write_file}}", "tool_choice.type: expected function"),
        ("{type: function}", "tool_choice.function: required key 'function' is missing"),
        ("5", "tool_choice: expected one of auto, none, required; got 5"),
    ],
)
def test_a_forced_tool_choice_must_name_a_declared_tool(choice: str, said: str) -> None:
    text = (
        "name: x\nmodel:\n  provider: openai\n  name: m\n  params:\n"
        f"    tool_choice: {choice}\n"
        "tools:\n  - {name: write_file, uses: fs.write, scope: {roots: [.]}}\n"
    )
    found = problems_of(text)
    assert len(found) == 1 and said in found[0], found


def test_fresh_is_for_success_checks_only() -> None:
    text = (
        "name: x\n" + OPENAI + "tools:\n  - name: w\n    uses: fs.write\n"
        "    scope: {roots: [ws]}\n"
        "    verify: [{check: file_exists, path: '{args.path}', fresh: true}]\n"
    )
    assert "tools[0].verify[0].fresh: expected `fresh` only under `success:`" in only_problem(text)


def test_a_local_endpoint_without_api_key_env_is_keyless() -> None:
    local = parse_manifest(
        "name: x\nmodel: {provider: openai, name: m, base_url: 'http://127.0.0.1:8080/v1'}\n",
        env={},
    )
    official = parse_manifest(
        "name: x\nmodel: {provider: openai, name: m, base_url: 'https://api.openai.com/v1'}\n",
        env={},
    )
    assert local.model.api_key_env is None
    assert local.secret_env_names() == set()
    assert official.model.api_key_env == "OPENAI_API_KEY"


def test_short_secrets_are_named() -> None:
    manifest = parse_manifest(
        "name: x\nsecrets: [TOKEN, LONG]\nmodel: {provider: openai, name: m}\n", env={}
    )
    env = {"OPENAI_API_KEY": "none", "TOKEN": "abc", "LONG": "a-long-enough-secret"}
    assert manifest.short_secrets(env) == ["OPENAI_API_KEY", "TOKEN"]
