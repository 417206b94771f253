"""The one user-facing error family.

Domain code raises these with a message that says what went wrong and what to do next;
only ``cli/`` turns them into output and an exit code.
"""

from __future__ import annotations


class GovrunError(Exception):
    """A problem a user can act on. ``exit_code`` is what the CLI exits with."""

    exit_code: int = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n{self.hint}"


class ManifestError(GovrunError):
    """The manifest cannot be loaded or is invalid. ``problems`` holds one line per issue."""

    def __init__(
        self, message: str, *, problems: list[str] | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.problems = problems or []

    def __str__(self) -> str:
        lines = [self.message, *(f"  {p}" for p in self.problems)]
        if self.hint:
            lines.append(self.hint)
        return "\n".join(lines)


class InputError(ManifestError):
    """A file the user handed govrun (a manifest, model script, approval rules, key, task)
    cannot be read as text: missing, a folder or device, empty, too large, binary or not
    UTF-8. A ManifestError, so that ``except ManifestError`` around ``load_manifest`` still
    catches every way a manifest can fail to load."""


class TraceError(GovrunError):
    """A trace cannot be read: missing, not a govrun trace, or a newer major schema."""


class TraceWriteError(GovrunError):
    """Writing the trace failed (disk full, I/O error). Fatal: the run halts before the next
    side effect, because a run whose record is incomplete must never report success."""

    exit_code = 1
