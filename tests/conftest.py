"""Suite-wide isolation: no test reads or writes the developer's real govrun config."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.support.temporal import temporal_server  # noqa: F401 - a session fixture

# The programs the dev extra installs (mcp-server-time, a real MCP server the examples name
# by its command) are found as in an activated virtualenv, however pytest was started.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"


@pytest.fixture(autouse=True)
def _private_govrun_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A fresh GOVRUN_HOME per test, so a signing key in ~/.config/govrun never signs a
    test's approvals (and a test's `keys init` never lands there)."""
    home = tmp_path_factory.mktemp("govrun-home")
    monkeypatch.setenv("GOVRUN_HOME", str(home))
    return home


@pytest.fixture(autouse=True)
def _console_width_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """rich fixes a console's width when it is created if COLUMNS is set then; let the
    COLUMNS each CLI invocation passes decide, so output wraps the same wherever tests run."""
    from govrun.cli.console import err, out

    for console in (out, err):
        monkeypatch.setattr(console, "_width", None)


@pytest.fixture(autouse=True)
def _private_run_registry(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A fresh GOVRUN_RUNS per test: `govrun run` lists its runs there, never in ./runs."""
    runs = tmp_path_factory.mktemp("govrun-runs")
    monkeypatch.setenv("GOVRUN_RUNS", str(runs))
    return runs
