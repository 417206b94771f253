"""`--help` of every command reads as written, and shell completion works (issue 17).

Every command's help is rendered through the real app at 80, 120 and 1000 columns: no type
label typer would add (`<bool>`, `<path>`, `<prompt|auto|deny>`), no `{ARG}` in a usage
line, and — where nothing needs wrapping — no sentence broken over two lines by a hard
wrap in a docstring. Completion runs the installed `govrun` script in a real process.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer

from govrun.cli.help import unwrap
from govrun.cli.main import app
from tests.support.cli import invoke


def command_paths() -> Iterator[tuple[str, ...]]:
    """Every command and group, as the words that reach it (``()`` is govrun itself)."""

    def walk(command: object, path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
        yield path
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            yield from walk(sub, (*path, name))

    yield from walk(typer.main.get_command(app), ())


COMMANDS = list(command_paths())
TYPE_LABEL = re.compile(
    r"<(bool|str|int|float|path|text|file|uuid|datetime|list\[[^>]*\]|[\w.-]+(\|[\w.-]+)+)>"
)
BOX = "│╭╮╰╯─━┃"


def help_text(path: tuple[str, ...], columns: int) -> str:
    ran = invoke(*path, "--help", env={"COLUMNS": str(columns)})
    ran.assert_clean()
    assert ran.code == 0, ran.out + ran.err
    return ran.out


def test_every_command_is_checked() -> None:
    names = {" ".join(p) for p in COMMANDS}
    assert {"", "run", "init", "validate", "policy explain", "ctl stop", "keys init"} <= names


@pytest.mark.parametrize("columns", [80, 120])
@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "govrun")
def test_help_has_no_type_labels(path: tuple[str, ...], columns: int) -> None:
    text = help_text(path, columns)
    assert not TYPE_LABEL.search(text), TYPE_LABEL.search(text)
    usage = next(line for line in text.splitlines() if "Usage:" in line)
    assert "{" not in usage, usage


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "govrun")
def test_help_paragraphs_are_not_broken_mid_sentence(path: tuple[str, ...]) -> None:
    """At 1000 columns nothing needs wrapping: a line that ends inside a sentence and a next
    line that goes on in lower case is a hard wrap from a docstring."""
    lines = [
        "" if line.lstrip().startswith(("╭", "╰")) else line.strip(BOX + " ")  # panel edges
        for line in help_text(path, 1000).splitlines()
    ]
    for line, after in itertools.pairwise(lines):
        broken = line and after and line[-1].isalnum() and after[0].islower()
        assert not broken, f"broken sentence:\n  {line}\n  {after}"


def test_flags_show_no_value_and_options_their_metavar() -> None:
    text = help_text(("run",), 120)
    assert re.search(r"│ --json +Stream events", text), text
    assert re.search(r"│ --output +-o +TRACE\.jsonl +Trace path", text), text
    assert re.search(r"│ --approve +\[prompt\|auto\|deny\|wait\] +Who decides", text), text
    assert "Usage: govrun run [OPTIONS] AGENT.yaml" in text
    assert re.search(r"│ --version +Show the version\.", help_text((), 120))


def test_unwrap_joins_paragraph_lines_and_keeps_lists() -> None:
    doc = """Check a manifest as `run` does: its fields, its tools (Python
    tools import) and its policy.

    Exit codes:
    - 0 when valid
    - 2 with every problem
    """
    assert unwrap(doc) == (
        "Check a manifest as `run` does: its fields, its tools (Python tools import) and its "
        "policy.\n\nExit codes:\n- 0 when valid\n- 2 with every problem"
    )
    assert unwrap("\b\nkept\nas is") == "\b\nkept\nas is"


def govrun_script() -> str:
    script = Path(sys.executable).with_name("govrun")
    found = str(script) if script.exists() else shutil.which("govrun")
    assert found, "the govrun console script is not installed (pip install -e .)"
    return found


def complete(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [govrun_script()],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )


def test_shell_completion_script_and_subcommand_names() -> None:
    shown = subprocess.run(
        [govrun_script(), "--show-completion", "bash"],
        env={**os.environ, "SHELL": "/bin/bash"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert shown.returncode == 0, shown.stderr
    assert "_govrun_completion()" in shown.stdout
    assert "_GOVRUN_COMPLETE=complete_bash" in shown.stdout

    words = complete(
        {"_GOVRUN_COMPLETE": "complete_bash", "COMP_WORDS": "govrun re", "COMP_CWORD": "1"}
    )
    assert words.returncode == 0, words.stderr
    assert words.stdout.split() == ["replay", "resume", "reject"]
    nested = complete(
        {"_GOVRUN_COMPLETE": "complete_bash", "COMP_WORDS": "govrun ctl st", "COMP_CWORD": "2"}
    )
    assert nested.stdout.split() == ["stop"]


def test_install_completion_is_offered() -> None:
    text = help_text((), 120)
    assert "--install-completion" in text and "--show-completion" in text
