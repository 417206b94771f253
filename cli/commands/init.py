"""`govrun init [DIR]`: a small agent that runs offline, to start from.

It writes ``agent.yaml`` (a manifest whose comments teach each section), ``script.yaml`` (the
scripted model's answers) and ``workspace/notes.md``, from the package data in
:mod:`govrun.cli.starter`. It never writes over a file: when one of them exists, nothing is
written and the message names it.
"""

from __future__ import annotations

import re
import shlex
from importlib.resources import files
from pathlib import Path
from typing import Annotated

import typer

from govrun.cli.console import handle_errors, out

STARTER = "govrun.cli.starter"
FILES = ("agent.yaml", "script.yaml", "workspace/notes.md")
"""What init writes, relative to DIR (and to the starter package)."""
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
"""A manifest `name:` (the folder's name is used when it is one)."""


@handle_errors
def init(
    folder: Annotated[
        Path,
        typer.Argument(help="Where to write the agent; created if missing.", metavar="DIR"),
    ] = Path("."),
) -> None:
    """Write a small agent that runs offline, to start from: a manifest whose comments teach
    each section, the scripted model's answers and a workspace. Never writes over a file."""
    from govrun.runtime.errors import GovrunError

    if folder.exists() and not folder.is_dir():
        raise GovrunError(f"{folder} is a file; govrun init writes into a folder.")
    taken = [
        folder / rel for rel in FILES if (folder / rel).exists() or (folder / rel).is_symlink()
    ]
    if taken:
        raise GovrunError(
            f"{taken[0]} already exists; govrun init never writes over a file, so it wrote "
            "nothing.",
            hint="Choose another folder: govrun init NEW_FOLDER",
        )
    name = _agent_name(folder)
    written: list[Path] = []
    try:
        for rel in FILES:
            target = folder / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            text = _starter(rel)
            if rel == "agent.yaml":
                text = text.replace("\nname: my-agent\n", f"\nname: {_yaml_text(name)}\n", 1)
            with target.open("x", encoding="utf-8") as handle:  # "x": never over a file
                written.append(target)
                handle.write(text)
    except OSError as exc:
        for path in written:
            path.unlink(missing_ok=True)
        raise GovrunError(f"cannot write {exc.filename or folder}: {exc.strerror or exc}") from None
    _next_steps(folder, name)


def _starter(rel: str) -> str:
    return files(STARTER).joinpath(*rel.split("/")).read_text(encoding="utf-8")


def _yaml_text(text: str) -> str:
    """``text`` as a YAML string: quoted when YAML would read it as something else (a folder
    called ``1.0`` or ``true``)."""
    import yaml

    return text if yaml.safe_load(text) == text else f'"{text}"'


def _agent_name(folder: Path) -> str:
    base = folder.resolve().name
    return base if NAME.match(base) else "my-agent"


def _next_steps(folder: Path, name: str) -> None:
    where = "" if folder == Path(".") else f"{folder}/"
    manifest = shlex.quote(f"{where}agent.yaml")
    out.print(f"[green]✓[/] wrote agent [bold]{name}[/] in {folder}/", highlight=False)
    for rel, what in (
        ("agent.yaml", "the manifest; its comments explain each section"),
        ("script.yaml", "the scripted model's answers, one turn per step"),
        ("workspace/", "the files it works on; each run gets its own copy"),
    ):
        out.print(f"  {where}{rel:<20} {what}", highlight=False)
    out.print("Next:", highlight=False)
    for command, why in (
        (f"govrun validate {manifest}", "check it"),
        (f"govrun run {manifest}", "run it offline; it prints TRACE and HEAD"),
        ("govrun show TRACE", "what the run did"),
        ("govrun verify TRACE --head HEAD", "prove the record was not altered"),
    ):
        out.print(f"  {command:<40} [dim]{why}[/]", highlight=False, soft_wrap=True)
