"""Policy decides what will actually run, not what the model typed (issue 15).

Each family is a table of spellings of the same protected target. Every spelling that
reaches the target is denied — by the rule, or before it (outside the scope, not
interpretable) — and ``govrun policy explain`` gives the same answer as the run's decision.
Then the bypasses that were demonstrated run through ``govrun run`` and end denied, with the
arguments as sent and the canonical call side by side in the trace.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from govrun.runtime.govern.decide import decide_call
from govrun.runtime.govern.policy import PolicyEngine
from govrun.runtime.govern.preflight import check_runnable
from govrun.runtime.govern.toolbox import PreparedCall, Toolbox
from govrun.runtime.manifest.schema import load_manifest
from govrun.runtime.ports import ToolCallRequest
from govrun.runtime.trace import events as ev
from govrun.runtime.trace.reader import read_trace
from tests.support.cli import govrun

SECRET = "TOKEN=hunter2"
MODEL = {"provider": "scripted", "script": "script.yaml"}


def write(folder: Path, doc: dict[str, Any], script: list[dict[str, Any]] | None = None) -> Path:
    path = folder / "agent.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    (folder / "script.yaml").write_text(yaml.safe_dump(script or [{"content": "done"}]))
    return path


def decide(manifest: Path, tool: str, arguments: dict[str, Any]) -> tuple[str, Any]:
    """(effect, the call as decided) — the loop's own decision path."""
    m = load_manifest(manifest, env={})
    toolbox = check_runnable(m)
    request = ToolCallRequest(id="c1", name=tool, arguments=json.dumps(arguments))
    verdict = decide_call(toolbox, PolicyEngine(m), 1, request)
    return verdict.effect, verdict.call


def explained(manifest: Path, tool: str, arguments: dict[str, Any]) -> str:
    ran = govrun("policy", "explain", manifest, tool, json.dumps(arguments))
    assert ran.code == 0, ran.flat
    return ran.out.split()[0].lower()


def assert_denied_everywhere(manifest: Path, tool: str, arguments: dict[str, Any]) -> Any:
    effect, call = decide(manifest, tool, arguments)
    assert effect == "deny", (arguments, call)
    assert explained(manifest, tool, arguments) == "deny", arguments
    return call


# --- paths --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fs_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ws/ with .env (the protected target), a subfolder, symlinked folders that lead back
    to the root, a symlink to .env, and a folder outside with a symlink into ws."""
    folder = tmp_path_factory.mktemp("fs")
    ws = folder / "ws"
    (ws / "sub" / "deeper").mkdir(parents=True)
    (ws / ".env").write_text(SECRET)
    (ws / "notes.md").write_text("# notes\n")
    (ws / "rootlink").symlink_to(ws, target_is_directory=True)
    (ws / "sub" / "up").symlink_to("..", target_is_directory=True)
    (ws / "envlink").symlink_to(".env")
    (folder / "wsalias").symlink_to(ws, target_is_directory=True)
    doc = {
        "name": "paths",
        "model": MODEL,
        "tools": [{"name": "read_file", "uses": "fs.read", "scope": {"roots": ["ws"]}}],
        "policy": {
            "default": "deny",
            "rules": [
                {
                    "id": "no-dotenv",
                    "tools": ["read_file"],
                    "when": {"path": {"glob": "*.env"}},
                    "effect": "deny",
                },
                {"id": "reads", "tools": ["read_file"], "effect": "allow"},
            ],
        },
    }
    write(folder, doc)
    return folder


def path_spellings(folder: Path) -> list[str]:
    ws = folder / "ws"
    return [
        ".env",
        ".env/",
        ".env/.",
        ".env//",
        ".env/./",
        ".env/.//.",
        "./.env",
        "./.env/",
        "./.env/.",
        ".//.env",
        "sub/../.env",
        "./sub/../.env/",
        "sub/./../.env",
        "sub//..//.env",
        "sub/.././.env",
        "sub/deeper/../../.env",
        "sub/../sub/../.env",
        "sub/up/.env",
        "sub/up/./.env/",
        "rootlink/.env",
        "rootlink/./.env",
        "rootlink/sub/../.env",
        "envlink",
        "./envlink",
        "sub/../envlink",
        str(ws / ".env"),
        str(ws / ".env") + "/",
        str(ws) + "/./.env",
        str(ws) + "//.env",
        str(ws / "sub" / ".." / ".env"),
        str(folder / "wsalias" / ".env"),
        str(folder / "wsalias" / "sub" / ".." / ".env") + "/.",
        "\uff0eenv",  # a full-width full stop: a look-alike, refused
        "sub\u2215..\u2215.env",  # division slashes: look-alikes, refused
        ".e\u200bnv",  # a zero-width space: invisible, refused
    ]


def test_every_path_spelling_of_the_target_is_denied_as_in_explain(fs_world: Path) -> None:
    manifest = fs_world / "agent.yaml"
    spellings = path_spellings(fs_world)
    assert len(spellings) >= 30
    for path in spellings:
        call = assert_denied_everywhere(manifest, "read_file", {"path": path})
        if isinstance(call, PreparedCall) and call.canonical is not None:
            assert call.canonical.arguments == {"path": ".env"}, path  # one target, one form


def test_unicode_forms_of_a_name_are_refused_not_confused(tmp_path: Path) -> None:
    """NFC and NFD spell é differently; the kernel sees two names. Text that is not NFKC
    is refused, so a rule on one spelling cannot be walked around with the other."""
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "cl\u00e9.pem").write_text(SECRET)
    doc = {
        "name": "unicode",
        "model": MODEL,
        "tools": [{"name": "read_file", "uses": "fs.read", "scope": {"roots": ["ws"]}}],
        "policy": {
            "rules": [
                {"id": "keys", "when": {"path": {"name": "*.pem"}}, "effect": "deny"},
                {"id": "reads", "effect": "allow"},
            ]
        },
    }
    manifest = write(tmp_path, doc)
    for path in ("cl\u00e9.pem", "cle\u0301.pem", "./cl\u00e9.pem/"):
        assert_denied_everywhere(manifest, "read_file", {"path": path})


def test_other_files_stay_readable_and_run_as_decided(fs_world: Path) -> None:
    manifest = fs_world / "agent.yaml"
    for path in ("notes.md", "./notes.md", "sub/../notes.md/", "rootlink/notes.md"):
        effect, call = decide(manifest, "read_file", {"path": path})
        assert effect == "allow" and call.canonical.arguments == {"path": "notes.md"}, path
        result = call.tool.run_canonical(call.canonical)
        assert result.ok and result.output == "# notes\n"


def test_a_canonical_path_is_its_own_canonical_form(fs_world: Path) -> None:
    """Feeding the canonical path back gives the same call: one spelling per target."""
    m = load_manifest(fs_world / "agent.yaml", env={})
    tool = Toolbox(m).tool("read_file")
    assert tool is not None
    for path in path_spellings(fs_world)[:32]:
        first = tool.canonicalize(tool.args_model.model_validate({"path": path})).arguments
        again = tool.canonicalize(tool.args_model.model_validate(first)).arguments
        assert first == again == {"path": ".env"}, path


def test_name_and_under_test_the_canonical_path(fs_world: Path, tmp_path: Path) -> None:
    doc = yaml.safe_load((fs_world / "agent.yaml").read_text())
    doc["policy"]["rules"][0]["when"] = {"path": {"name": ".env"}}
    doc["policy"]["rules"].insert(
        0,
        {
            "id": "no-sub",
            "tools": ["read_file"],
            "when": {"path": {"under": "sub"}},
            "effect": "deny",
        },
    )
    folder = fs_world
    manifest = folder / "agent-name.yaml"
    manifest.write_text(yaml.safe_dump(doc, sort_keys=False))
    assert decide(manifest, "read_file", {"path": "rootlink/.env/."})[0] == "deny"
    assert decide(manifest, "read_file", {"path": "sub/deeper/x"})[0] == "deny"
    assert decide(manifest, "read_file", {"path": "rootlink/sub/x"})[0] == "deny"
    assert decide(manifest, "read_file", {"path": "subway.md"})[0] == "allow"  # not under sub
    assert decide(manifest, "read_file", {"path": "sub/up/notes.md"})[0] == "allow"


# --- hard links ---------------------------------------------------------------------------


def test_a_hard_link_to_a_file_outside_is_not_read(tmp_path: Path) -> None:
    (tmp_path / "ws").mkdir()
    (tmp_path / "outside.txt").write_text(SECRET)
    os.link(tmp_path / "outside.txt", tmp_path / "ws" / "inside.txt")
    doc = {
        "name": "links",
        "model": MODEL,
        "tools": [
            {"name": "read_file", "uses": "fs.read", "scope": {"roots": ["ws"]}},
            {
                "name": "sh",
                "uses": "shell",
                "scope": {"roots": ["ws"], "commands": {"cat": {}}},
            },
        ],
        "policy": {"default": "allow"},
    }
    manifest = write(tmp_path, doc)
    effect, call = decide(manifest, "read_file", {"path": "inside.txt"})
    result = call.tool.run_canonical(call.canonical)
    assert not result.ok and result.failure_class == "policy_denied"
    assert "2 hard links" in (result.error or "") and SECRET not in result.output
    effect, call = decide(manifest, "sh", {"command": "cat inside.txt"})
    assert effect == "deny" and "hard links" in call.scope_error.message
    doc["tools"][0]["scope"]["hardlinks"] = "allow"
    doc["tools"][1]["scope"]["hardlinks"] = "allow"
    manifest = write(tmp_path, doc)
    effect, call = decide(manifest, "read_file", {"path": "inside.txt"})
    assert call.tool.run_canonical(call.canonical).output == SECRET  # allowed on purpose


# --- shell words --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sh_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sh")
    ws = folder / "ws"
    (ws / "sub").mkdir(parents=True)
    (ws / ".env").write_text(SECRET)
    (ws / "notes.md").write_text("# notes\n")
    (ws / "envlink").symlink_to(".env")
    (ws / "rootlink").symlink_to(ws, target_is_directory=True)
    return folder


def shell_manifest(folder: Path, when: dict[str, Any], name: str) -> Path:
    doc = {
        "name": "shell-words",
        "model": MODEL,
        "tools": [
            {
                "name": "sh",
                "uses": "shell",
                "scope": {
                    "roots": ["ws"],
                    "cwd": "ws",
                    "commands": {
                        "cat": {"flags": ["-n", "--number", "-A"]},
                        "wc": {"flags": ["-l", "--files0-from"]},
                    },
                },
            }
        ],
        "policy": {
            "rules": [
                {"id": "no-dotenv", "tools": ["sh"], "when": when, "effect": "deny"},
                {"id": "shell", "tools": ["sh"], "effect": "allow"},
            ]
        },
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    (folder / "script.yaml").write_text(yaml.safe_dump([{"content": "done"}]))
    return path


SHELL_SPELLINGS = [
    "cat .env",
    "cat '.env'",
    'cat ".env"',
    "cat .e''nv",
    "cat '.e'nv",
    "cat .e\\nv",
    "cat \".e\"'n'v",
    "cat \\.env",
    "cat .\\e\\n\\v",
    "cat '.''e''n''v'",
    'cat ".e""nv"',
    "cat .en\\v",
    "cat  .env",
    "cat\t.env",
    "cat -- .env",
    "cat -n .env",
    "cat -nA .env",
    "cat --number .env",
    "cat -- ./.env",
    "cat ./.env",
    "cat sub/../.env",
    "cat ./sub/.././.env",
    "cat rootlink/.env",
    "cat envlink",
    "cat ./envlink",
    "cat notes.md .env",
    "cat .env notes.md",
    "cat '' .env",
    "wc -l .env",
    "wc --files0-from=.env",
    "wc --files0-from=./envlink",
    'cat "$PWD/.env"',
    "cat $'\\x2eenv'",
    "cat `echo .env`",
    "cat ${HOME}/../ws/.env",
    "cat ~/.env",
]


@pytest.mark.parametrize(
    "when",
    [
        {"command": {"regex": "\\.env"}},
        {"command": {"glob": ".env"}},
        {"command": {"glob": "*.env"}},
        {"paths": {"name": ".env"}},
    ],
    ids=["regex", "glob-word", "glob-suffix", "paths-name"],
)
def test_every_shell_spelling_of_the_target_is_denied_as_in_explain(
    sh_world: Path, when: dict[str, Any]
) -> None:
    manifest = shell_manifest(sh_world, when, "-".join(map(str, when)))
    assert len(SHELL_SPELLINGS) >= 30
    for command in SHELL_SPELLINGS:
        assert_denied_everywhere(manifest, "sh", {"command": command})


def test_the_argv_is_what_runs(sh_world: Path) -> None:
    manifest = shell_manifest(sh_world, {"command": {"regex": "\\.env"}}, "runs")
    effect, call = decide(manifest, "sh", {"command": "cat no'tes'.md"})
    assert effect == "allow"
    assert call.canonical.arguments == {"command": ["cat", "notes.md"], "paths": ["notes.md"]}
    result = call.tool.run_canonical(call.canonical)
    assert result.ok and result.output == "# notes\n"
    assert result.evidence["argv"] == ["cat", "notes.md"]


# --- typed values -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def money(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("types")
    doc = {
        "name": "money",
        "model": MODEL,
        "tools": [{"name": "transfer", "python": "tests.support.pytools:transfer"}],
        "policy": {
            "rules": [
                {"id": "no-zero", "when": {"amount": {"equals": 0}}, "effect": "deny"},
                {"id": "no-million", "when": {"amount": {"one_of": [1000000]}}, "effect": "deny"},
                {"id": "no-huge", "when": {"amount": {"min": 10**12}}, "effect": "deny"},
                {"id": "transfers", "effect": "allow"},
            ]
        },
    }
    return write(folder, doc)


ZERO = [0, False, "0", " 0 ", "0 ", "\t0\n", "+0", "-0", 0.0, -0.0, "00", 0e0, "000"]
MILLION = [
    1000000,
    1000000.0,
    1e6,
    "1000000",
    " 1000000 ",
    "+1000000",
    "1000000\n",
    1000000.0000000001,  # equal to 1000000.0 as a double
    999999.99999999999,  # likewise
    10.0**6,
]
HUGE = [10**12, 10**30, 2**64, 10**40, "99999999999999999999999", 1e13, 1e300]
ODD = ["0.5", "1e400", "zero", None, [0], {"n": 0}, "0x0", float("nan")]
"""Not integers at all: refused as invalid arguments before policy — never run."""


def test_every_typed_spelling_of_a_denied_value_is_denied_as_in_explain(money: Path) -> None:
    spellings = ZERO + MILLION + HUGE + ODD
    assert len(spellings) >= 30
    for amount in spellings:
        arguments = {"amount": amount, "to": "mallory"}
        if isinstance(amount, float) and amount != amount:  # NaN is not JSON
            request = ToolCallRequest(
                id="c1", name="transfer", arguments='{"amount": NaN, "to": "mallory"}'
            )
            m = load_manifest(money, env={})
            assert decide_call(Toolbox(m), PolicyEngine(m), 1, request).effect == "deny"
            continue
        call = assert_denied_everywhere(money, "transfer", arguments)
        if isinstance(call, PreparedCall) and call.canonical is not None:
            assert call.canonical.arguments["amount"] in (0, 1000000) or (
                call.canonical.arguments["amount"] >= 10**12
            )


def test_other_amounts_run_with_the_typed_value(money: Path) -> None:
    effect, call = decide(money, "transfer", {"amount": " 42 ", "to": "bob"})
    assert effect == "allow" and call.canonical.arguments == {"amount": 42, "to": "bob"}
    assert call.tool.run_canonical(call.canonical).output == "sent 42 to bob"


def test_a_predicate_that_cannot_fit_its_argument_is_a_validate_error(money: Path) -> None:
    doc = yaml.safe_load(money.read_text())
    doc["policy"]["rules"][0]["when"] = {"amount": {"equals": "0"}}
    doc["policy"]["rules"][1]["when"] = {"to": {"min": 3}}
    doc["policy"]["rules"][2]["when"] = {"amont": {"max": 3}}
    bad = money.parent / "bad.yaml"
    bad.write_text(yaml.safe_dump(doc, sort_keys=False))
    ran = govrun("validate", bad)
    assert ran.code == 2
    assert f"{bad}:" in ran.flat and "policy.rules[0].when.amount.equals" in ran.flat
    assert "got '0'" in ran.flat and "canonical, typed values" in ran.flat
    assert "policy.rules[1].when.to.min: min cannot test to of transfer" in ran.flat
    assert "policy.rules[2].when.amont" in ran.flat and "did you mean 'amount'" in ran.flat
    assert govrun("run", bad, "-o", money.parent / "never.jsonl").code == 2
    assert not (money.parent / "never.jsonl").exists()  # a refused run leaves no trace


def test_path_predicates_on_a_plain_string_are_refused_at_validate(tmp_path: Path) -> None:
    doc = {
        "name": "strings",
        "model": MODEL,
        "tools": [{"name": "greet", "python": "tests.support.pytools:greet"}],
        "policy": {"rules": [{"id": "r", "when": {"name": {"under": "x"}}, "effect": "deny"}]},
    }
    ran = govrun("validate", write(tmp_path, doc))
    assert ran.code == 2 and "is not resolved as a path" in ran.flat


# --- regexes that cannot hang a decision ---------------------------------------------------


def test_a_catastrophic_regex_is_decided_within_a_second(tmp_path: Path) -> None:
    doc = {
        "name": "redos",
        "model": MODEL,
        "tools": [
            {"name": "greet", "python": "tests.support.pytools:greet"},
            {"name": "sh", "uses": "shell", "scope": {"roots": ["."], "commands": {"echo": {}}}},
        ],
        "policy": {
            "rules": [
                {"id": "redos", "when": {"name": {"regex": "(a+)+$"}}, "effect": "deny"},
                {"id": "redos-sh", "when": {"command": {"regex": "(a+)+$"}}, "effect": "deny"},
                {"id": "rest", "effect": "allow"},
            ]
        },
    }
    manifest = write(tmp_path, doc)
    hostile = "a" * 10_000 + "!"
    start = time.monotonic()
    assert decide(manifest, "greet", {"name": hostile})[0] == "allow"
    decide(manifest, "sh", {"command": f"echo {hostile} {hostile}"})  # a word too long to be a path
    assert decide(manifest, "greet", {"name": "a" * 10_000})[0] == "deny"
    assert time.monotonic() - start < 1.0


def test_patterns_the_engine_cannot_take_are_named_at_validate(tmp_path: Path) -> None:
    doc = {
        "name": "lookaround",
        "model": MODEL,
        "tools": [{"name": "greet", "python": "tests.support.pytools:greet"}],
        "policy": {"rules": [{"id": "r", "when": {"name": {"regex": "(a)\\1"}}, "effect": "deny"}]},
        "success": [{"check": "final_answer_matches", "pattern": "^(?!no)"}],
    }
    ran = govrun("validate", write(tmp_path, doc))
    assert ran.code == 2
    assert "policy.rules[0].when.name.regex" in ran.flat and "backreferences" in ran.flat
    assert "success[0].pattern" in ran.flat and "lookahead" in ran.flat


# --- the demonstrated bypasses, through govrun run ---------------------------------------


def run_and_read(folder: Path, manifest: Path) -> list[ev.Event]:
    trace = folder / "trace.jsonl"
    ran = govrun("run", manifest, "-o", trace, "--json", "-i", "go")
    assert ran.code in (0, 1), ran.flat
    assert govrun("verify", trace).code == 0
    assert SECRET not in trace.read_text()
    events, _ = read_trace(trace)
    return events


def denied_calls(events: list[ev.Event]) -> dict[str, tuple[Any, Any]]:
    started = {e.call_id for e in events if isinstance(e, ev.ToolStarted)}
    out = {}
    for e in events:
        if isinstance(e, ev.ToolCall) and e.decision.effect == "deny":
            assert e.call_id not in started
            out[e.call_id] = (e.arguments, e.canonical)
    return out


def test_quickstart_path_bypasses_end_denied(tmp_path: Path) -> None:
    quickstart = Path(__file__).parents[1] / "fixtures" / "agents"
    manifest = yaml.safe_load((quickstart / "quickstart.yaml").read_text())
    manifest["model"]["script"] = "script.yaml"
    manifest["interrupts"] = {}
    (tmp_path / "quickstart-workspace").mkdir()
    (tmp_path / "quickstart-workspace" / ".env").write_text(SECRET)
    spellings = [".env/", ".env/.", ".env//", ".env/./", "./sub/../.env/"]
    script = [
        {"tool_calls": [{"name": "read_file", "arguments": {"path": p}} for p in spellings]},
        {"content": "done"},
    ]
    path = write(tmp_path, manifest, script)
    denied = denied_calls(run_and_read(tmp_path, path))
    assert sorted(sent["path"] for sent, _ in denied.values()) == sorted(spellings)
    assert all(canonical == {"path": ".env"} for _, canonical in denied.values())


def test_shell_word_bypasses_end_denied(tmp_path: Path) -> None:
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / ".env").write_text(SECRET)
    commands = ["cat .e''nv", "cat '.e'nv", "cat .e\\nv"]
    doc = {
        "name": "shell-bypass",
        "model": {"provider": "scripted", "script": "script.yaml"},
        "tools": [
            {
                "name": "sh",
                "uses": "shell",
                "scope": {"roots": ["ws"], "cwd": "ws", "commands": {"cat": {}}},
            }
        ],
        "policy": {
            "rules": [
                {"id": "no-dotenv", "when": {"command": {"regex": "\\.env"}}, "effect": "deny"},
                {"id": "cat", "tools": ["sh"], "effect": "allow"},
            ]
        },
    }
    script = [
        {"tool_calls": [{"name": "sh", "arguments": {"command": c}} for c in commands]},
        {"content": "done"},
    ]
    denied = denied_calls(run_and_read(tmp_path, write(tmp_path, doc, script)))
    assert sorted(sent["command"] for sent, _ in denied.values()) == sorted(commands)
    for _, canonical in denied.values():
        assert canonical == {"command": ["cat", ".env"], "paths": [".env"]}


def test_type_coercion_bypasses_end_denied(tmp_path: Path) -> None:
    amounts = [False, "0", " 0 ", "1000000"]
    doc = {
        "name": "type-bypass",
        "model": {"provider": "scripted", "script": "script.yaml"},
        "tools": [{"name": "transfer", "python": "tests.support.pytools:transfer"}],
        "policy": {
            "rules": [
                {"id": "no-zero", "when": {"amount": {"equals": 0}}, "effect": "deny"},
                {"id": "no-million", "when": {"amount": {"one_of": [1000000]}}, "effect": "deny"},
                {"id": "transfers", "effect": "allow"},
            ]
        },
    }
    script = [
        {
            "tool_calls": [
                {"name": "transfer", "arguments": {"amount": a, "to": "mallory"}} for a in amounts
            ]
        },
        {"content": "done"},
    ]
    denied = denied_calls(run_and_read(tmp_path, write(tmp_path, doc, script)))
    assert len(denied) == 4
    for sent, canonical in denied.values():
        assert sent["amount"] in amounts and canonical["amount"] in (0, 1000000)
        assert orjson.dumps(sent) != orjson.dumps(canonical)  # both kept, side by side
