"""The YAML limits (issue 17): every user YAML file is composed and converted within a
budget of values, depth and text, and holds only values the trace can record. Problems name
file:line like any other manifest problem."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from govrun.runtime.errors import GovrunError, ManifestError
from govrun.runtime.govern.approval_rules import parse_approval_rules
from govrun.runtime.manifest import limits
from govrun.runtime.manifest.limits import MAX_DEPTH, MAX_VALUES
from govrun.runtime.manifest.schema import parse_manifest
from govrun.runtime.models.scripted import ScriptedModel

HEAD = "name: x\nmodel: {provider: openai, name: gpt-4o-mini}\n"


def bomb(levels: int = 9, width: int = 9, leaf: str = '"lol"') -> str:
    """The billion laughs: ``width ** levels`` values from a few hundred bytes."""
    lines = [f"l0: &l0 [{', '.join([leaf] * width)}]"]
    for n in range(1, levels):
        lines.append(f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


def refused(text: str) -> ManifestError:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(text, source="agent.yaml", env={})
    return caught.value


def test_an_alias_bomb_stops_at_its_first_alias_quickly() -> None:
    started = time.perf_counter()
    error = refused(HEAD + "x-bomb:\n" + "".join(f"  {line}\n" for line in bomb().splitlines()))
    assert time.perf_counter() - started < 1.0
    assert error.message == "agent.yaml is not a valid govrun manifest (1 problem)"
    [problem] = error.problems
    assert problem.startswith(f"agent.yaml:5:12 (top level): expands to more than {MAX_VALUES:,}")
    assert "(an alias/anchor bomb?)" in problem
    assert error.hint is not None and "*alias" in error.hint


def test_long_strings_repeated_by_aliases_are_a_bomb_too() -> None:
    long = '"' + "x" * 60_000 + '"'
    [problem] = refused(HEAD + bomb(levels=4, width=9, leaf=long)).problems
    assert "expands to more than 8 MiB of text (an alias/anchor bomb?)" in problem


def test_aliases_within_the_budget_are_fine() -> None:
    text = HEAD + "x: &shared {a: 1, b: [1, 2]}\nsecrets: []\ny: [*shared, *shared]\n"
    problems = refused(text).problems  # x and y are unknown keys, and nothing else
    assert [p.split(" ", 2)[1] for p in problems] == ["x:", "y:"]


@pytest.mark.parametrize("style", ["block", "flow"])
def test_deep_nesting_is_refused_at_its_line(style: str) -> None:
    depth = MAX_DEPTH + 5
    if style == "flow":
        nested = "system: " + "[" * depth + "]" * depth + "\n"
    else:
        nested = "system:\n" + "".join(" " * n + "- \n" for n in range(depth))
    [problem] = refused(HEAD + nested).problems
    assert problem.startswith("agent.yaml:")
    assert f"nests lists and mappings more than {MAX_DEPTH} levels deep" in problem


def test_deeper_than_libyaml_allows_gets_the_same_message() -> None:
    [problem] = refused(HEAD + "system: " + "[" * 5000 + "]" * 5000 + "\n").problems
    assert f"more than {MAX_DEPTH} levels deep" in problem


def test_nesting_through_aliases_is_counted() -> None:
    lines, previous = [], ""
    for n in range(4):  # each level nests the previous one 40 deep: 160 in all
        lines.append(f"a{n}: &a{n} " + "[" * 40 + previous + "]" * 40)
        previous = f"*a{n}"
    [problem] = refused(HEAD + "\n".join(lines) + "\n").problems
    assert "levels deep through its aliases" in problem


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("99999999999999999999999", "99999999999999999999999 is outside what the trace can"),
        ("9223372036854775808", "9223372036854775808 is outside what the trace can record"),
        ("-9223372036854775809", "-9223372036854775809 is outside what the trace can record"),
        (".inf", "inf is outside what the trace can record: a number must be finite"),
        ("-.inf", "-inf is outside what the trace can record"),
        (".nan", "nan is outside what the trace can record"),
        ("1.0e+400", "inf is outside what the trace can record"),
    ],
)
def test_numbers_the_trace_cannot_record_are_refused_at_their_line(value: str, words: str) -> None:
    [problem] = refused(f"{HEAD}budgets:\n  max_steps: {value}\n").problems
    assert problem.startswith(f"agent.yaml:4:3 budgets.max_steps: {words}"), problem


def test_the_edges_of_the_range_are_recorded() -> None:
    manifest = parse_manifest(f"{HEAD}budgets: {{max_steps: 9223372036854775807}}\n", env={})
    assert manifest.budgets.max_steps == 2**63 - 1


def test_a_control_character_is_named_with_its_line() -> None:
    [problem] = refused(HEAD + "system: a\x01b\n").problems
    assert problem == (
        "agent.yaml:3:10: YAML syntax error: unacceptable character #x0001 "
        "(YAML allows no control characters in a file)"
    )


def test_approval_rules_go_through_the_same_limits() -> None:
    with pytest.raises(ManifestError) as caught:
        parse_approval_rules("rules: []\n" + bomb(), source="rules.yaml")
    assert caught.value.message == "rules.yaml is not a valid approval rules file (1 problem)"
    assert "(an alias/anchor bomb?)" in caught.value.problems[0]


def test_model_scripts_go_through_the_same_limits(tmp_path: Path) -> None:
    script = tmp_path / "script.yaml"
    script.write_text("- content: hi\n- content: [*x]\n")
    with pytest.raises(GovrunError) as caught:
        ScriptedModel.from_file(script)
    assert "found undefined alias 'x'" in str(caught.value)
    script.write_text("- content: hi\n  usage: {prompt_tokens: 99999999999999999999999}\n")
    with pytest.raises(GovrunError) as caught:
        ScriptedModel.from_file(script)
    message = str(caught.value)
    assert f"{script}:2:11 turns[0].usage.prompt_tokens: 99999999999999999999999 is outside" in (
        message
    )
    assert message.count("prompt_tokens") == 1  # said once, not again by validation
    script.write_text("- content: hi\n  usage: {prompt_tokens: 1, prompt_tokens: 2}\n")
    with pytest.raises(GovrunError, match="duplicate key 'prompt_tokens'"):
        ScriptedModel.from_file(script)


@pytest.mark.parametrize("composer", limits._COMPOSERS, ids=lambda c: c.__name__)
def test_libyaml_and_the_pure_python_fallback_count_alike(composer: type) -> None:
    """libyaml parses when PyYAML has it; the pure-Python parser is the fallback."""
    deep = "x: " + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)
    with pytest.raises(limits.LimitExceeded) as caught:
        composer(deep).get_single_node()
    # the top-level mapping is the first level: the 100th list is the 101st
    assert (caught.value.mark.line, caught.value.mark.column) == (0, 2 + MAX_DEPTH)
    loader = composer("a: &a [1]\nb: [*a, *a]\n")
    root = loader.get_single_node()
    assert loader.first_alias.line == 1 and loader.first_alias.column == 4
    assert root.value[1][1].value[0] is root.value[0][1]  # an alias is the node it names
