"""Budgets and anomaly detectors (``runtime/guards.py``), checked directly.

A budget trips exactly at its limit — never one call early, never one late — and says which
rule, the limit and what was used. Detectors see proposed calls: identical calls by their
canonical arguments, tool orders as subsequences matched by name or builtin glob, and
argument sizes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from govrun.runtime.govern.guards import Counters, Guards, Trip
from govrun.runtime.manifest.schema import Manifest, parse_manifest

TOOLS = [
    {"name": "read", "uses": "fs.read", "scope": {"roots": ["ws"]}},
    {"name": "write", "uses": "fs.write", "scope": {"roots": ["ws"]}},
    {"name": "ls", "uses": "fs.list", "scope": {"roots": ["ws"]}},
    {"name": "fetch", "uses": "http.get", "scope": {"hosts": ["example.org"]}},
    {"name": "sh", "uses": "shell", "scope": {"roots": ["ws"], "commands": {"ls": {}}}},
]


def manifest(tmp_path: Path, **sections: Any) -> Manifest:
    data = {
        "name": "guarded",
        "model": {"provider": "openai", "name": "gpt-fake"},
        "tools": TOOLS,
        **sections,
    }
    return parse_manifest(yaml.safe_dump(data), base_dir=tmp_path, env={})


def guards(tmp_path: Path, **sections: Any) -> Guards:
    return Guards(manifest(tmp_path, **sections))


def assert_budget(trip: Trip | None, rule: str, limit: float, used: float) -> None:
    assert trip is not None, f"{rule} did not trip"
    assert (trip.kind, trip.rule, trip.action, trip.failure_class) == (
        "budget",
        rule,
        "stop",
        "budget_exceeded",
    )
    assert trip.detail == {"limit": limit, "used": used}
    assert f"used {used:g} of {limit:g}" in trip.reason


# --- budgets -------------------------------------------------------------------------------


def test_max_steps_trips_exactly_at_the_limit(tmp_path: Path) -> None:
    g = guards(tmp_path, budgets={"max_steps": 3})

    assert g.before_step(Counters(steps=2)) is None  # the third step may begin
    assert_budget(g.before_step(Counters(steps=3)), "max_steps", 3, 3)
    assert_budget(g.before_step(Counters(steps=4)), "max_steps", 3, 4)


def test_default_max_steps_is_50(tmp_path: Path) -> None:
    g = guards(tmp_path)

    assert g.before_step(Counters(steps=49)) is None
    assert_budget(g.before_step(Counters(steps=50)), "max_steps", 50, 50)


def test_no_other_budget_by_default(tmp_path: Path) -> None:
    g = guards(tmp_path)
    huge = Counters(model_calls=10**6, tool_calls=10**6, prompt_tokens=10**9, cost_usd=10**6)
    huge.elapsed_s = 10**6
    huge.per_tool["write"] = 10**6

    assert g.before_model_call(huge) is None
    assert g.before_tool_call(huge, "write") is None


def test_max_model_calls(tmp_path: Path) -> None:
    g = guards(tmp_path, budgets={"max_model_calls": 2})

    assert g.before_model_call(Counters(model_calls=1)) is None
    assert_budget(g.before_model_call(Counters(model_calls=2)), "max_model_calls", 2, 2)
    assert g.before_step(Counters(model_calls=2)) is None  # only checked before a model call


def test_max_tool_calls(tmp_path: Path) -> None:
    g = guards(tmp_path, budgets={"max_tool_calls": 2})

    assert g.before_tool_call(Counters(tool_calls=1), "write") is None
    assert_budget(g.before_tool_call(Counters(tool_calls=2), "read"), "max_tool_calls", 2, 2)


def test_max_tool_calls_per_tool_counts_only_that_tool(tmp_path: Path) -> None:
    g = guards(tmp_path, budgets={"max_tool_calls_per_tool": {"write": 2, "fetch": 1}})
    c = Counters(tool_calls=10)
    c.per_tool.update({"write": 1, "read": 50, "fetch": 0})

    assert g.before_tool_call(c, "write") is None
    assert g.before_tool_call(c, "read") is None  # no budget of its own
    assert g.before_tool_call(c, "fetch") is None
    c.per_tool["write"] = 2
    c.per_tool["fetch"] = 1
    assert_budget(g.before_tool_call(c, "write"), "max_tool_calls_per_tool.write", 2, 2)
    assert_budget(g.before_tool_call(c, "fetch"), "max_tool_calls_per_tool.fetch", 1, 1)
    assert g.before_tool_call(c, "read") is None


def test_the_total_tool_budget_is_checked_before_the_per_tool_one(tmp_path: Path) -> None:
    g = guards(tmp_path, budgets={"max_tool_calls": 3, "max_tool_calls_per_tool": {"write": 3}})
    c = Counters(tool_calls=3)
    c.per_tool["write"] = 3

    assert_budget(g.before_tool_call(c, "write"), "max_tool_calls", 3, 3)


def test_max_tokens_counts_prompt_and_completion(tmp_path: Path) -> None:
    g = guards(tmp_path, budgets={"max_tokens": 1000})

    assert g.before_model_call(Counters(prompt_tokens=900, completion_tokens=99)) is None
    at_limit = Counters(prompt_tokens=900, completion_tokens=100)
    assert_budget(g.before_model_call(at_limit), "max_tokens", 1000, 1000)
    assert_budget(g.before_step(at_limit), "max_tokens", 1000, 1000)
    assert_budget(g.before_tool_call(at_limit, "read"), "max_tokens", 1000, 1000)


def test_max_cost_usd(tmp_path: Path) -> None:
    g = guards(tmp_path, budgets={"max_cost_usd": 0.5})

    assert g.before_model_call(Counters(cost_usd=0.4999999)) is None
    assert_budget(g.before_model_call(Counters(cost_usd=0.5)), "max_cost_usd", 0.5, 0.5)
    trip = g.before_step(Counters(cost_usd=0.123456789 + 0.5))
    assert trip is not None and trip.detail["used"] == 0.623457  # rounded for people


def test_max_wall_time_via_counters(tmp_path: Path) -> None:
    g = guards(tmp_path, budgets={"max_wall_time_s": 60})

    assert g.before_step(Counters(elapsed_s=59.999)) is None
    assert_budget(g.before_step(Counters(elapsed_s=60.0)), "max_wall_time_s", 60, 60)
    assert_budget(g.before_tool_call(Counters(elapsed_s=61.25), "sh"), "max_wall_time_s", 60, 61.25)


@pytest.mark.parametrize(
    ("budgets", "counters", "rule"),
    [
        ({"max_tokens": 10, "max_cost_usd": 1}, {"prompt_tokens": 10, "cost_usd": 1}, "max_tokens"),
        (
            {"max_cost_usd": 1, "max_wall_time_s": 1},
            {"cost_usd": 1, "elapsed_s": 1},
            "max_cost_usd",
        ),
        ({"max_steps": 1, "max_tokens": 1}, {"steps": 1, "prompt_tokens": 1}, "max_steps"),
    ],
)
def test_when_several_budgets_are_spent_the_first_is_reported(
    tmp_path: Path, budgets: dict, counters: dict, rule: str
) -> None:
    trip = guards(tmp_path, budgets=budgets).before_step(Counters(**counters))
    assert trip is not None and trip.rule == rule


# --- repeat_call -----------------------------------------------------------------------------


def test_repeat_call_trips_on_the_nth_identical_call(tmp_path: Path) -> None:
    g = guards(tmp_path, interrupts={"repeat_call": {"max_repeats": 3}})

    assert g.on_proposed("read", {"path": "a"}, 13) is None
    assert g.on_proposed("read", {"path": "a"}, 13) is None
    trip = g.on_proposed("read", {"path": "a"}, 13)

    assert trip is not None
    assert (trip.kind, trip.rule, trip.action, trip.failure_class) == (
        "anomaly",
        "repeat_call",
        "stop",
        "anomaly",
    )
    assert trip.detail == {"tool": "read", "count": 3}
    assert "3 times" in trip.reason


def test_repeat_call_ignores_key_order(tmp_path: Path) -> None:
    g = guards(tmp_path, interrupts={"repeat_call": {"max_repeats": 2}})

    assert g.on_proposed("write", {"path": "a", "content": "x"}, 0) is None
    trip = g.on_proposed("write", {"content": "x", "path": "a"}, 0)

    assert trip is not None and trip.detail["count"] == 2


def test_repeat_call_sees_nested_key_order_too(tmp_path: Path) -> None:
    g = guards(tmp_path, interrupts={"repeat_call": {"max_repeats": 2}})

    assert g.on_proposed("sh", {"o": {"a": 1, "b": [1, {"y": 2, "x": 1}]}}, 0) is None
    assert g.on_proposed("sh", {"o": {"b": [1, {"x": 1, "y": 2}], "a": 1}}, 0) is not None


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (("read", {"path": "a"}), ("read", {"path": "b"})),
        (("read", {"path": "a"}), ("write", {"path": "a"})),
        (("read", {"path": "1"}), ("read", {"path": 1})),
        (("read", {"path": "a"}), ("read", {"path": "a", "extra": None})),
        (("read", {"path": [1, 2]}), ("read", {"path": [2, 1]})),
    ],
    ids=["other-value", "other-tool", "string-vs-number", "extra-key", "list-order"],
)
def test_different_calls_are_not_repeats(
    tmp_path: Path, first: tuple[str, Any], second: tuple[str, Any]
) -> None:
    g = guards(tmp_path, interrupts={"repeat_call": {"max_repeats": 2}})

    assert g.on_proposed(*first, 0) is None
    assert g.on_proposed(*second, 0) is None


def test_repeat_counts_are_kept_per_call(tmp_path: Path) -> None:
    g = guards(tmp_path, interrupts={"repeat_call": {"max_repeats": 2, "action": "pause"}})

    assert g.on_proposed("read", {"path": "a"}, 0) is None
    assert g.on_proposed("read", {"path": "b"}, 0) is None
    trip = g.on_proposed("read", {"path": "a"}, 0)
    assert trip is not None and trip.action == "pause"
    again = g.on_proposed("read", {"path": "a"}, 0)  # after a resume it keeps counting
    assert again is not None and again.detail["count"] == 3


def test_unparsable_arguments_still_count_as_repeats(tmp_path: Path) -> None:
    g = guards(tmp_path, interrupts={"repeat_call": {"max_repeats": 2}})

    assert g.on_proposed("read", None, 9) is None
    assert g.on_proposed("read", None, 9) is not None


def test_without_repeat_call_nothing_trips(tmp_path: Path) -> None:
    g = guards(tmp_path)

    assert all(g.on_proposed("read", {"path": "a"}, 0) is None for _ in range(100))


# --- forbidden sequences -----------------------------------------------------------------------


def sequences(*seqs: list[str], action: str = "stop") -> dict[str, Any]:
    return {
        "forbidden_sequences": [
            {"id": f"seq{i}", "sequence": s, "action": action} for i, s in enumerate(seqs)
        ]
    }


def test_a_forbidden_sequence_trips_when_its_last_tool_is_proposed(tmp_path: Path) -> None:
    g = guards(tmp_path, interrupts=sequences(["read", "fetch"]))

    assert g.on_proposed("read", {}, 0) is None
    g.on_executed("read")
    trip = g.on_proposed("fetch", {}, 0)

    assert trip is not None
    assert (trip.kind, trip.rule, trip.action) == ("anomaly", "forbidden_sequences.seq0", "stop")
    assert trip.detail == {"sequence": ["read", "fetch"], "tool": "fetch"}
    assert "read → fetch" in trip.reason


def test_a_forbidden_sequence_need_not_be_adjacent(tmp_path: Path) -> None:
    g = guards(tmp_path, interrupts=sequences(["read", "ls", "fetch"]))

    for tool in ("read", "write", "write", "ls", "sh"):
        assert g.on_proposed(tool, {"n": tool}, 0) is None
        g.on_executed(tool)

    assert g.on_proposed("fetch", {}, 0) is not None


def test_a_forbidden_sequence_must_happen_in_order(tmp_path: Path) -> None:
    g = guards(tmp_path, interrupts=sequences(["read", "ls", "fetch"]))
    for tool in ("ls", "read"):
        g.on_executed(tool)

    assert g.on_proposed("fetch", {}, 0) is None
    g.on_executed("ls")
    assert g.on_proposed("fetch", {}, 0) is not None


def test_only_executed_calls_count(tmp_path: Path) -> None:
    """A read that was proposed (and denied, so never executed) does not start a sequence."""
    g = guards(tmp_path, interrupts=sequences(["read", "fetch"]))

    assert g.on_proposed("read", {}, 0) is None
    assert g.on_proposed("fetch", {}, 0) is None


def test_sequences_match_by_builtin_glob(tmp_path: Path) -> None:
    g = guards(tmp_path, interrupts=sequences(["fs.*", "http.get"]))

    g.on_executed("ls")  # uses fs.list
    assert g.on_proposed("sh", {}, 0) is None  # shell is not http.get
    trip = g.on_proposed("fetch", {}, 0)

    assert trip is not None and trip.detail["sequence"] == ["fs.*", "http.get"]


def test_sequences_match_by_tool_name_glob(tmp_path: Path) -> None:
    g = guards(tmp_path, interrupts=sequences(["re*", "fe*"]))

    g.on_executed("read")
    assert g.on_proposed("fetch", {}, 0) is not None


def test_the_first_tool_alone_does_not_trip(tmp_path: Path) -> None:
    g = guards(tmp_path, interrupts=sequences(["fs.*", "fs.write"]))

    assert g.on_proposed("write", {}, 0) is None  # nothing executed before it
    g.on_executed("write")
    assert g.on_proposed("write", {}, 0) is not None  # fs.write then fs.write


def test_the_first_sequence_that_completes_is_reported(tmp_path: Path) -> None:
    g = guards(tmp_path, interrupts=sequences(["ls", "fetch"], ["read", "fetch"], action="pause"))
    g.on_executed("read")

    trip = g.on_proposed("fetch", {}, 0)

    assert trip is not None
    assert (trip.rule, trip.action) == ("forbidden_sequences.seq1", "pause")


# --- argument size -------------------------------------------------------------------------------


def test_argument_size_trips_above_the_limit_only(tmp_path: Path) -> None:
    g = guards(tmp_path, interrupts={"argument_size": {"max_bytes": 100, "action": "pause"}})

    assert g.on_proposed("write", {}, 100) is None
    trip = g.on_proposed("write", {}, 101)

    assert trip is not None
    assert (trip.kind, trip.rule, trip.action) == ("anomaly", "argument_size", "pause")
    assert trip.detail == {"bytes": 101, "limit": 100}
    assert "101 bytes" in trip.reason


def test_argument_size_is_checked_before_repeats(tmp_path: Path) -> None:
    g = guards(
        tmp_path,
        interrupts={"argument_size": {"max_bytes": 10}, "repeat_call": {"max_repeats": 2}},
    )

    assert g.on_proposed("write", {"a": 1}, 11) is not None
    trip = g.on_proposed("write", {"a": 1}, 11)
    assert trip is not None and trip.rule == "argument_size"


def test_a_trip_is_frozen(tmp_path: Path) -> None:
    trip = guards(tmp_path, budgets={"max_steps": 1}).before_step(Counters(steps=1))
    assert trip is not None
    with pytest.raises(AttributeError):
        trip.rule = "other"  # type: ignore[misc]
