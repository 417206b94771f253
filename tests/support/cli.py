"""Running the real typer app in-process for CLI tests, and reading what it printed."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from typer.testing import CliRunner

from govrun.cli.main import app

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
ENV: dict[str, str | None] = {"COLUMNS": "250"}
"""Wide enough that rich does not wrap the lines tests look for."""


class Ran:
    """A finished CLI invocation: exit code, stdout and stderr without colour codes."""

    def __init__(self, result: Any) -> None:
        self.code: int = result.exit_code
        self.out = ANSI.sub("", result.stdout)
        self.err = ANSI.sub("", result.stderr)
        self.exception = result.exception

    @property
    def flat(self) -> str:
        """stdout and stderr with every run of whitespace made one space (undoes wrapping)."""
        return " ".join(f"{self.out}\n{self.err}".split())

    def assert_clean(self) -> None:
        """No Python traceback and no crash (which the CLI says in one paragraph): only
        govrun's own messages and exit codes."""
        assert "Traceback" not in self.out + self.err, self.out + self.err
        assert "govrun failed unexpectedly" not in self.err, self.err
        assert self.exception is None or isinstance(self.exception, SystemExit), repr(
            self.exception
        )


def invoke(*args: object, env: Mapping[str, str | None] | None = None) -> Ran:
    """``govrun ARGS`` in-process, without checking the output."""
    return Ran(CliRunner().invoke(app, [str(a) for a in args], env={**ENV, **(env or {})}))


def govrun(*args: object, env: Mapping[str, str | None] | None = None) -> Ran:
    """``govrun ARGS`` in-process; fails the test if a traceback escaped."""
    ran = invoke(*args, env=env)
    ran.assert_clean()
    return ran
