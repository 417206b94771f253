"""Hostile input files through every command that reads files (issue 17).

A corpus of files a user might hand govrun by mistake or on purpose — a folder, a FIFO, a
device, an empty file, NUL bytes, a byte-order mark, UTF-16, non-UTF-8, 50 MB of text or of
random bytes, an alias bomb, deep nesting, integers and numbers the trace cannot hold, one
50 MB line — goes through each command that reads that kind of file. Each must exit 2 with
one short paragraph that names the file, no traceback, within 2 s; a refused `run` leaves
no trace. The worst ones then run through the real executable, within 2 s and 200 MB RSS.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.cli import Ran, invoke

REPO = Path(__file__).resolve().parents[1]
TRACES = REPO / "fixtures" / "traces"
SCRIPT = REPO / "fixtures" / "scripts" / "minimal.yaml"
MB = 1 << 20
GOVRUN = Path(sys.executable).parent / "govrun"


def _bomb(levels: int = 9, width: int = 9, leaf: str = '"lol"') -> str:
    lines = [f"l0: &l0 [{', '.join([leaf] * width)}]"]
    for n in range(1, levels):
        lines.append(f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


AGENT = "name: hostile\nmodel: {provider: scripted, script: " + str(SCRIPT) + "}\n"
_noise = random.Random(17)

GENERIC: dict[str, bytes | None] = {
    "missing": None,  # never created
    "empty": b"",
    "bom_only": b"\xef\xbb\xbf",
    "nul_bytes": b"\x00" * 4096,
    "nul_inside.yaml": AGENT.encode() + b"system: a\x00b\n",
    "binary.bin": b"\x8f" + _noise.randbytes(4095),
    "latin1.yaml": "name: café\n".encode("latin-1"),
    "utf16.yaml": "\ufeffname: x\n".encode("utf-16-le"),
    "text_50mb.yaml": None,  # BIG: written by the fixture, not held in memory
    "garbage_50mb.bin": None,
}
"""Refused whatever kind of file they stand for. Plus a folder, a FIFO, /dev/zero and a
symbolic link loop, made by the fixture."""

_GOOD = (TRACES / "complete.jsonl").read_bytes()
_COMMENT = b"# a comment line, fifty megabytes of them".ljust(63) + b"\n"  # 64 bytes

BIG: dict[str, Callable[[int], bytes]] = {
    "text_50mb.yaml": lambda n: _COMMENT * (MB // len(_COMMENT)),
    "garbage_50mb.bin": lambda n: (b"\x8f" if n == 0 else b"") + random.Random(n).randbytes(MB),
    "line_50mb.jsonl": lambda n: (b'{"agent": "' if n == 0 else b"") + b"x" * MB,
    "trace_then_garbage_50mb.jsonl": lambda n: (
        (_GOOD if n == 0 else b"") + random.Random(n).randbytes(MB)
    ),
    "trace_then_line_50mb.jsonl": lambda n: (_GOOD + b'{"a": "' if n == 0 else b"") + b"x" * MB,
}
"""50 MB files, written a megabyte at a time (chunk ``n``) by the fixture."""

SPECIAL = ("folder", "fifo", "symlink_loop", "/dev/zero")

_STAIRS = "".join(" " * n + "- \n" for n in range(150))  # a list in a list, 150 deep

YAML: dict[str, bytes] = {
    "bomb.yaml": (AGENT + _bomb()).encode(),
    "text_bomb.yaml": (AGENT + _bomb(levels=4, leaf='"' + "x" * 60_000 + '"')).encode(),
    "deep_flow.yaml": (AGENT + "system: " + "[" * 5000 + "]" * 5000 + "\n").encode(),
    "deep_block.yaml": (AGENT + "system:\n" + _STAIRS).encode(),
    "huge_int.yaml": (AGENT + "budgets: {max_steps: 99999999999999999999999}\n").encode(),
    "not_finite.yaml": (AGENT + "budgets: {max_cost_usd: .inf, max_wall_time_s: .nan}\n").encode(),
    "control_char.yaml": (AGENT + "system: a\x01b\n").encode(),
    "tab_crlf.yaml": b"\xef\xbb\xbfname: x\r\nmodel:\r\n\tprovider: scripted\r\n",
    "bom_crlf_huge_int.yaml": b"\xef\xbb\xbf"
    + AGENT.replace("\n", "\r\n").encode()
    + b"budgets: {max_steps: -99999999999999999999999}\r\n",
}
"""Manifests, model scripts and approval rules are YAML."""

TRACE: dict[str, bytes | None] = {
    "line_50mb.jsonl": None,  # BIG
    "trace_then_garbage_50mb.jsonl": None,
    "trace_then_line_50mb.jsonl": None,
    "deep_json.jsonl": b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n",
    "json_not_events.jsonl": b'{"name": "x", "value": 1}\n{"name": "y"}\n',
    "huge_int.jsonl": b'{"seq": 99999999999999999999999, "type": "run_started", "v": 1}\n',
    "bad_utf8.jsonl": b'{"agent": "caf\xe9"}\n',
    "bom.jsonl": b"\xef\xbb\xbf" + _GOOD,
    "text.jsonl": b"Lorem ipsum dolor sit amet,\nconsectetur adipiscing elit.\n",
}
"""Traces are JSON lines."""

DAMAGED = {"trace_then_garbage_50mb.jsonl", "trace_then_line_50mb.jsonl"}
"""Real traces with something appended: verify finds them altered (exit 1, a failed check);
every other command refuses them as input (exit 2)."""


def expected_code(command: str, name: str) -> int:
    return 1 if command == "verify" and name in DAMAGED else 2


KEY: dict[str, bytes] = {"not_a_key.pem": b"hello, I am not a key\n"}
"""Signing and trusted keys are text of their own shape."""


@dataclass(frozen=True)
class Corpus:
    folder: Path
    good_trace: Path
    agent: Path
    wrappers: dict[str, Path]
    """Hostile file name -> a manifest whose model script it is."""

    def path(self, name: str) -> Path:
        return Path(name) if name.startswith("/") else self.folder / name

    def wrapper(self, hostile: Path) -> Path:
        return self.wrappers[hostile.name if hostile.parent == self.folder else str(hostile)]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    root = tmp_path_factory.mktemp("hostile")
    folder = root / "corpus"
    folder.mkdir()
    for name, data in {**GENERIC, **YAML, **TRACE, **KEY}.items():
        if data is not None:
            (folder / name).write_bytes(data)
    for name, chunk in BIG.items():
        with (folder / name).open("wb") as f:
            for n in range(50):
                f.write(chunk(n))
    (folder / "folder").mkdir()
    os.mkfifo(folder / "fifo")
    (folder / "symlink_loop").symlink_to("symlink_loop")
    good = root / "good.jsonl"
    shutil.copy(TRACES / "complete.jsonl", good)
    agent = root / "agent.yaml"
    agent.write_text(AGENT)
    wrappers = {}
    for n, name in enumerate([*GENERIC, *SPECIAL, *YAML]):
        script = name if name.startswith("/") else f"corpus/{name}"
        wrapper = root / f"wrapper-{n}.yaml"  # a name that names no hostile file
        wrapper.write_text(f"name: hostile\nmodel: {{provider: scripted, script: {script}}}\n")
        wrappers[name] = wrapper
    assert len(GENERIC) + len(SPECIAL) + len(YAML) + len(TRACE) + len(KEY) >= 25
    return Corpus(folder, good, agent, wrappers)


@pytest.fixture(autouse=True)
def _never_hangs() -> Iterator[None]:
    """A command that waits on the FIFO fails the test instead of hanging the suite."""

    def hung(signum: int, frame: object) -> None:
        raise TimeoutError("a command blocked on a hostile file")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(20)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


Args = Callable[[Corpus, Path, Path], list[object]]
"""(corpus, the hostile file, a path for a trace that must not appear) -> govrun's args."""

COMMANDS: dict[str, dict[str, Args]] = {
    "manifest": {
        "validate": lambda c, f, o: ["validate", f],
        "run": lambda c, f, o: ["run", f, "-i", "hi", "-o", o],
        "policy explain": lambda c, f, o: ["policy", "explain", f, "read_file", "{}"],
        "replay --manifest": lambda c, f, o: ["replay", c.good_trace, "--manifest", f, "-o", o],
    },
    "model script": {
        "validate": lambda c, f, o: [
            "validate",
            c.wrappers[f.name if f.parent == c.folder else str(f)],
        ],
        "run": lambda c, f, o: [
            "run",
            c.wrappers[f.name if f.parent == c.folder else str(f)],
            "-i",
            "hi",
            "-o",
            o,
        ],
    },
    "approval rules": {
        "run --approvals": lambda c, f, o: ["run", c.agent, "-i", "hi", "--approvals", f, "-o", o],
    },
    "signing key": {
        "run --key": lambda c, f, o: ["run", c.agent, "-i", "hi", "--key", f, "-o", o],
        "keys show": lambda c, f, o: ["keys", "show", "--path", f],
    },
    "trusted keys": {
        "verify --trusted-keys": lambda c, f, o: ["verify", c.good_trace, "--trusted-keys", f],
    },
    "task": {
        "run -i @FILE": lambda c, f, o: ["run", c.agent, "-i", f"@{f}", "-o", o],
    },
    "trace": {
        "verify": lambda c, f, o: ["verify", f],
        "show": lambda c, f, o: ["show", f],
        "replay": lambda c, f, o: ["replay", f, "-o", o],
        "resume": lambda c, f, o: ["resume", f, "-o", o, "--in-flight", "skip"],
        "diff A": lambda c, f, o: ["diff", f, c.good_trace],
        "diff B": lambda c, f, o: ["diff", c.good_trace, f],
        "rollback": lambda c, f, o: ["rollback", f, "-o", o],
        "inspect": lambda c, f, o: ["inspect", f],
    },
}
"""Which commands read which kind of file. (`mcp pin` does not exist yet: none.)"""

FILES: dict[str, list[str]] = {
    "manifest": [*GENERIC, *SPECIAL, *YAML],
    "model script": [*GENERIC, *SPECIAL, *YAML],
    "approval rules": [*GENERIC, *SPECIAL, *YAML],
    "signing key": [*GENERIC, *SPECIAL, *KEY],
    "trusted keys": [*GENERIC, *SPECIAL, *KEY],
    "task": [*GENERIC, *SPECIAL],
    "trace": [*GENERIC, *SPECIAL, *TRACE],
}

CASES = [
    pytest.param(kind, command, name, id=f"{command}-{name}")
    for kind, commands in COMMANDS.items()
    for command in commands
    for name in FILES[kind]
]


def assert_one_paragraph(ran: Ran) -> str:
    """No traceback and no blank line: a headline, a problem or a few, and a hint."""
    ran.assert_clean()
    text = (ran.out + ran.err).strip()
    assert text, "no message at all"
    assert "\n\n" not in text, text
    assert len(text.splitlines()) <= 8, text
    return ran.flat


@pytest.mark.parametrize(("kind", "command", "name"), CASES)
def test_a_hostile_file_is_refused_in_one_paragraph(
    corpus: Corpus, tmp_path: Path, kind: str, command: str, name: str
) -> None:
    hostile = corpus.path(name)
    output = tmp_path / "out.jsonl"
    args = COMMANDS[kind][command](corpus, hostile, output)

    started = time.perf_counter()
    ran = invoke(*args)
    elapsed = time.perf_counter() - started

    flat = assert_one_paragraph(ran)
    assert ran.code == expected_code(command, name), flat
    assert elapsed < 2.0, f"{elapsed:.2f} s"
    assert not output.exists(), "a refused command left a trace"
    if command != "inspect":  # inspect may first refuse to start without a terminal
        assert hostile.name in flat or str(hostile) in flat, flat


# --- what the messages say -------------------------------------------------------------------

EXPECTED: dict[tuple[str, str], str] = {
    ("validate", "missing"): "missing: no such manifest",
    ("validate", "folder"): "folder: the manifest is a folder, not a file",
    ("validate", "fifo"): "fifo: the manifest is a named pipe (FIFO), not a regular file",
    ("validate", "/dev/zero"): "/dev/zero: the manifest is a character device, not a regular",
    ("validate", "empty"): "empty: the manifest is empty",
    ("validate", "nul_bytes"): "the manifest is binary, not text (a NUL byte at offset 0, line 1)",
    ("validate", "nul_inside.yaml"): "binary, not text (a NUL byte at offset ",
    ("validate", "latin1.yaml"): "not UTF-8 text (byte 0xe9 at offset 9, line 1)",
    ("validate", "utf16.yaml"): "utf16.yaml: the manifest is UTF-16 text, not UTF-8",
    ("validate", "text_50mb.yaml"): "the manifest is too large (50 MiB, over the 1 MiB limit)",
    ("run -i @FILE", "text_50mb.yaml"): "text_50mb.yaml: the task file is too large (50 MiB, over",
    ("validate", "bomb.yaml"): "bomb.yaml:4:10 (top level): expands to more than 100,000 values",
    ("validate", "text_bomb.yaml"): "expands to more than 8 MiB of text (an alias/anchor bomb?)",
    ("validate", "deep_flow.yaml"): "deep_flow.yaml:3:",
    ("validate", "deep_block.yaml"): "deep_block.yaml:",
    ("validate", "huge_int.yaml"): "huge_int.yaml:3:11 budgets.max_steps: 99999999999999999999999",
    ("validate", "not_finite.yaml"): "not_finite.yaml:3:11 budgets.max_cost_usd: inf is outside",
    ("validate", "control_char.yaml"): "control_char.yaml:3:10: YAML syntax error",
    ("validate", "tab_crlf.yaml"): "tab_crlf.yaml:3:1: YAML syntax error",
    ("validate", "bom_crlf_huge_int.yaml"): "bom_crlf_huge_int.yaml:3:11 budgets.max_steps: -9999",
    ("run -i @FILE", "latin1.yaml"): "latin1.yaml: the task file is not UTF-8 text",
    ("verify --trusted-keys", "latin1.yaml"): "the trusted keys file is not UTF-8 text",
    ("show", "garbage_50mb.bin"): "is not a govrun trace: it begins with byte 0x8f",
    ("show", "line_50mb.jsonl"): "its first line is longer than 16 MiB, and no govrun event is",
    ("show", "deep_json.jsonl"): "deep_json.jsonl:1: not valid JSON",
    ("show", "trace_then_line_50mb.jsonl"): "line_50mb.jsonl:40: longer than 16 MiB, and no",
    ("verify", "trace_then_line_50mb.jsonl"): "line 40 (after seq 38) is longer than 16 MiB",
    ("show", "empty"): "empty: the trace is empty",
    ("verify", "empty"): "empty: the trace is empty",
    ("verify", "nul_bytes"): "it begins with a NUL byte (binary data), not a JSON object",
    ("replay", "bom.jsonl"): "it begins with a UTF-8 byte-order mark, not a JSON object",
    ("diff A", "folder"): "folder: the trace is a folder, not a file",
    ("rollback", "fifo"): "fifo: the trace is a named pipe (FIFO), not a regular file",
}


@pytest.mark.parametrize(("command", "name"), sorted(EXPECTED))
def test_the_message_says_what_is_wrong_and_where(corpus: Corpus, command: str, name: str) -> None:
    kind = next(k for k, commands in COMMANDS.items() if command in commands)
    ran = invoke(*COMMANDS[kind][command](corpus, corpus.path(name), corpus.folder / "x.jsonl"))
    assert EXPECTED[command, name] in ran.flat, ran.flat


def test_a_bom_and_crlf_are_read_as_text(corpus: Corpus, tmp_path: Path) -> None:
    agent = tmp_path / "agent.yaml"
    agent.write_bytes(b"\xef\xbb\xbf" + AGENT.replace("\n", "\r\n").encode())
    assert invoke("validate", agent).code == 0
    task = tmp_path / "task.md"
    task.write_bytes(b"\xef\xbb\xbfline one\r\nline two\r\n")
    trace = tmp_path / "run.jsonl"
    ran = invoke("run", agent, "-i", f"@{task}", "-o", trace)
    assert ran.code == 0, ran.flat
    assert b'"input":"line one\\nline two\\n"' in trace.read_bytes()


# --- the worst ones, through the real executable -----------------------------------------------

WORST = [
    ("validate", "bomb.yaml"),
    ("run", "bomb.yaml"),
    ("validate", "text_bomb.yaml"),
    ("validate", "deep_flow.yaml"),
    ("run", "deep_block.yaml"),
    ("validate", "text_50mb.yaml"),
    ("run", "text_50mb.yaml"),
    ("validate", "huge_int.yaml"),
    ("run", "huge_int.yaml"),
    ("verify", "garbage_50mb.bin"),
    ("verify", "line_50mb.jsonl"),
    ("show", "line_50mb.jsonl"),
    ("replay", "line_50mb.jsonl"),
    ("diff A", "line_50mb.jsonl"),
    ("verify", "deep_json.jsonl"),
    ("verify", "trace_then_line_50mb.jsonl"),
    ("show", "trace_then_line_50mb.jsonl"),
    ("replay", "trace_then_line_50mb.jsonl"),
    ("diff A", "trace_then_line_50mb.jsonl"),
    ("inspect", "trace_then_line_50mb.jsonl"),
    ("replay", "trace_then_garbage_50mb.jsonl"),
    ("inspect", "trace_then_garbage_50mb.jsonl"),
]


MEASURE = """
import json, os, subprocess, sys, time
started = time.perf_counter()
child = subprocess.Popen(sys.argv[1:], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
output = child.stdout.read()
_, status, usage = os.wait4(child.pid, 0)
print(json.dumps({"seconds": time.perf_counter() - started, "rss_mb": usage.ru_maxrss / 1024,
                  "code": os.waitstatus_to_exitcode(status), "output": output.decode()}))
"""
"""Runs a command and reports its time, exit code and peak RSS. A separate small process:
a child's ru_maxrss counts the memory of the process it was forked from (here, pytest
holding the corpus), so govrun must be the child of a process that holds little."""


@pytest.mark.parametrize(("command", "name"), WORST, ids=[f"{c}-{n}" for c, n in WORST])
def test_the_worst_stay_within_2_s_and_200_mb(
    corpus: Corpus, tmp_path: Path, command: str, name: str
) -> None:
    kind = "manifest" if name.endswith(".yaml") else "trace"
    output = tmp_path / "out.jsonl"
    args = [str(a) for a in COMMANDS[kind][command](corpus, corpus.path(name), output)]
    measured = subprocess.run(
        [sys.executable, "-c", MEASURE, str(GOVRUN), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "250"},
        check=True,
    )
    result = json.loads(measured.stdout)

    assert result["code"] == expected_code(command, name), result["output"]
    assert "Traceback" not in result["output"]
    assert result["seconds"] < 2.0, f"{result['seconds']:.2f} s"
    assert result["rss_mb"] < 200, f"{result['rss_mb']:.0f} MB"
    assert not output.exists()
