"""A manifest's `workspace:` — a folder each run gets a fresh copy of.

Without it an agent works on the folders its manifest names, so a second run starts from
what the first one left and two runs of one agent cannot be compared. With it each run
copies the template to ``TRACE.workspace/<template name>/`` before its first step, and
every path of the manifest that names the template or something in it (tool roots and
``cwd``, ``inside``/``not_inside`` folders, check paths) means that copy. The template is
never written to; the copy stays next to the trace, for `govrun rollback` and for people.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from pydantic import Field, ValidationInfo, model_validator

from govrun.runtime.errors import GovrunError
from govrun.runtime.manifest.fields import Section, Text
from govrun.runtime.manifest.problems import fail_if
from govrun.runtime.manifest.reader import show


class Workspace(Section):
    """A folder copied afresh for every run, so runs start from the same files."""

    template: Text = Field(
        description="The folder each run gets its own copy of (relative to the manifest), "
        "made next to the trace as TRACE.workspace/<folder name>/. A root, cwd, "
        "inside/not_inside folder or check path naming this folder, or something in it, "
        "means the run's copy; the folder itself is never changed."
    )

    @model_validator(mode="after")
    def _template_is_a_folder(self, info: ValidationInfo) -> Self:
        context = info.context if isinstance(info.context, dict) else {}
        if context.get("snapshot"):  # a recorded run: the template need not exist here
            return self
        folder = Path(context.get("base_dir") or Path.cwd())
        if not (folder / self.template).is_dir():
            fail_if(
                {
                    ("template",): f"expected an existing folder relative to {folder}; "
                    f"got {show(self.template)}"
                }
            )
        return self


def lexical(path: Path) -> Path:
    """``path`` with ``.`` and ``..`` folded as text (symlinks are for the tools to resolve)."""
    return Path(os.path.normpath(path))


@dataclass(frozen=True)
class WorkspaceCopy:
    """Where one run's copy of the template is, and how manifest paths reach it."""

    template: Path
    """The template folder, absolute and lexically normal."""
    folder: Path
    """The run's workspace folder, ``TRACE.workspace/``; the copy is inside it."""

    @property
    def copy(self) -> Path:
        """The run's copy of the template: ``TRACE.workspace/<template name>/``."""
        return self.folder / self.template.name

    def place(self, path: Path) -> Path:
        """``path`` (absolute), moved into the copy when it names the template or something
        inside it; any other path unchanged."""
        normal = lexical(path)
        if normal == self.template or normal.is_relative_to(self.template):
            return self.copy / normal.relative_to(self.template)
        return path

    def contains_template(self, path: Path) -> bool:
        """Whether ``path`` is a folder above the template: a tool rooted there would reach
        the template itself, not the run's copy."""
        normal = lexical(path)
        return normal != self.template and self.template.is_relative_to(normal)


def workspace_folder(trace: str | Path) -> Path:
    """Where the run writing ``trace`` keeps its workspace: ``run.jsonl.workspace/``."""
    p = Path(trace)
    return p.with_name(p.name + ".workspace")


def make_workspace(workspace: WorkspaceCopy, trace: Path) -> None:
    """Copy the template into a new workspace folder for the run writing ``trace``.

    Refuses an existing folder (a run never works in another run's files) and a trace inside
    the template (the copy would copy itself). Symlinks are copied as links: the tools refuse
    to follow them, as in the template.
    """
    if trace.resolve().is_relative_to(workspace.template.resolve()):
        raise GovrunError(
            f"the trace {trace} is inside the workspace template {workspace.template}",
            hint="Write the trace elsewhere with -o, or run from another folder.",
        )
    if not workspace.template.is_dir():
        raise GovrunError(f"the workspace template {workspace.template} is not a folder")
    try:
        workspace.folder.mkdir(parents=True)
    except FileExistsError:
        raise GovrunError(
            f"{workspace.folder} already exists; a run never works in another run's workspace.",
            hint="Choose another trace path with -o.",
        ) from None
    except OSError as exc:
        raise GovrunError(f"cannot create {workspace.folder}: {exc.strerror or exc}") from None
    try:
        shutil.copytree(workspace.template, workspace.copy, symlinks=True)
    except (OSError, shutil.Error) as exc:
        shutil.rmtree(workspace.folder, ignore_errors=True)
        raise GovrunError(
            f"cannot copy the workspace template {workspace.template}: {_reason(exc)}"
        ) from None


def remove_workspace(workspace: WorkspaceCopy) -> None:
    """Undo :func:`make_workspace` for a run that could not start."""
    shutil.rmtree(workspace.folder, ignore_errors=True)


def _reason(exc: OSError | shutil.Error) -> str:
    if isinstance(exc, shutil.Error):
        errors = exc.args[0] if exc.args and isinstance(exc.args[0], list) else []
        return f"{errors[0][0]}: {errors[0][2]}" if errors else str(exc)
    return f"{exc.filename}: {exc.strerror}" if exc.filename else str(exc.strerror or exc)
