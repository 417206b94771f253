"""The tool contract: arguments model, canonical call, confined run, typed result.

Every tool call is proposed by a hostile model. A tool therefore (1) validates arguments
against a closed pydantic model, (2) turns them into the :class:`Canonical` call it will
execute — resolved root-relative paths, the argv that will run, typed values — refusing
what leaves its scope, before policy, approval and the trace see the call, and (3) executes
exactly that canonical call, enforcing its scope again as it acts, because it never trusts
that the world did not change in between. The model's raw text is never parsed twice, so
what was judged is what runs. Nothing a tool does raises out of ``run()`` or
``run_canonical()``: every outcome is a ``ToolResult`` with a failure class.
"""

from __future__ import annotations

import copy
import difflib
import functools
import importlib
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from govrun.runtime.errors import GovrunError

ToolFailure = Literal["tool_error", "timeout", "policy_denied", "invalid_arguments"]
"""The failure classes a tool itself can report (a subset of the trace's failure classes)."""


UNDO_MAX_BYTES = 8 * 1024 * 1024
"""Largest file whose previous content fs.write/fs.delete keep for rollback (default of the
manifest's ``undo_max_bytes``); a larger change is recorded as irreversible, never skipped."""


class FileUndo(BaseModel):
    """How to undo one file change, captured before the change. ``pre_image`` holds the
    exact bytes the file had (None: it did not exist), so restoring is byte for byte; the
    loop moves them to the trace's sidecar and records only their hash."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str = Field(description="The file, relative to its root.")
    root: str = Field(description="The absolute root it is under: rollback acts there later.")
    pre_image: bytes | None = Field(description="Content before the change; None: absent.")
    post_image: str | None = Field(
        description="SHA-256 of what the call left; None: the call deleted the file."
    )
    mode: int | None = Field(None, description="Permission bits before the change.")
    created_dirs: tuple[str, ...] = Field(
        (), description="Folders the call created (relative to the root), removed with the file."
    )

    @property
    def kind(self) -> Literal["restore", "remove"]:
        """Restore the previous content, or remove a file the call created."""
        return "remove" if self.pre_image is None else "restore"


class CommandUndo(BaseModel):
    """A shell tool's declared ``undo:`` command, rendered with the call's arguments and
    vetted by the tool's own allowlist when the call ran."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["command"] = "command"
    argv: tuple[str, ...] = Field(description="The undo command, as an argv (no shell).")


class Irreversible(BaseModel):
    """A change that cannot be undone (a file over the pre-image limit, a deleted symlink, an
    undo command the allowlist refuses): recorded, so rollback reports it instead of
    silently leaving it in place."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["irreversible"] = "irreversible"
    reason: str = Field(description="Why it cannot be undone.")
    path: str | None = Field(None, description="The file concerned, if any.")


Undo = FileUndo | CommandUndo | Irreversible
"""How a call's effect can be undone; carried by :class:`ToolResult`, recorded by the loop."""


class ToolResult(BaseModel):
    """What one call produced: the text the model sees plus structured data and evidence."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ok: bool = Field(description="Whether the call succeeded.")
    output: str = Field("", description="What the model is shown, already size-limited.")
    data: dict[str, Any] = Field(default_factory=dict, description="Structured result.")
    evidence: dict[str, Any] = Field(
        default_factory=dict, description="What actually happened, for verification and rollback."
    )
    error: str | None = Field(None, description="Why the call failed, when not ok.")
    failure_class: ToolFailure | None = Field(None, description="Set when not ok.")
    truncated: bool = Field(False, description="Whether output was cut to the size limit.")
    undo: Undo | None = Field(
        None,
        exclude=True,
        description="How to undo the call's effect. Never shown to the model nor put in "
        "`data`: the loop stores a pre-image in the sidecar and records `evidence.undo`.",
    )

    @classmethod
    def failure(
        cls,
        failure_class: ToolFailure,
        error: str,
        *,
        output: str = "",
        data: dict[str, Any] | None = None,
        evidence: dict[str, Any] | None = None,
        truncated: bool = False,
    ) -> ToolResult:
        """A failed result; the model is shown the error when there is no other output."""
        return cls(
            ok=False,
            output=output or f"error: {error}",
            data=data or {},
            evidence=evidence or {},
            error=error,
            failure_class=failure_class,
            truncated=truncated,
        )

    @classmethod
    def succeeded(
        cls, output: str, data: dict[str, Any], evidence: dict[str, Any], truncated: bool
    ) -> ToolResult:
        """``cls(ok=True, output=..., data=..., evidence=..., truncated=...)``, the same
        object field for field, built without validating (which costs more than a cheap
        tool call). The caller passes dicts keyed by plain ``str`` that nothing mutates
        afterwards: validating would only copy them. Any other output or truncated type
        is validated as usual."""
        if type(output) is not str or type(truncated) is not bool:
            return cls(ok=True, output=output, data=data, evidence=evidence, truncated=truncated)
        result = cls.__new__(cls)
        fields = {
            "ok": True,
            "output": output,
            "data": data,
            "evidence": evidence,
            "error": None,
            "failure_class": None,
            "truncated": truncated,
            "undo": None,
        }
        # What pydantic's model_construct sets; the fields set are the ones passed above.
        _set_slot(result, "__dict__", fields)
        _set_slot(
            result, "__pydantic_fields_set__", {"ok", "output", "data", "evidence", "truncated"}
        )
        _set_slot(result, "__pydantic_extra__", None)
        _set_slot(result, "__pydantic_private__", None)
        return result


_set_slot = object.__setattr__
"""Sets a model's slot past its frozen ``__setattr__``, as pydantic itself does."""


def portable(path: Path, root: Path) -> str:
    """``path`` as the model and the trace see it: relative to the root when they share a
    folder (``../../notes.md``), absolute only when they share nothing but ``/``
    (``/etc/passwd``) — not the machine's own folder layout, so a run records the same text
    wherever the repository is checked out, and replays there."""
    if os.path.commonpath([path, root]) == path.anchor:
        return str(path)
    return os.path.relpath(path, root)


def describe_roots(roots: Sequence[Path]) -> str:
    """Roots by name (``root 'ws'``), for messages the model sees."""
    names = ", ".join(repr(r.name) for r in roots)
    return f"root {names}" if len(roots) == 1 else f"roots {names}"


ArgKind = Literal[
    "path",
    "paths",
    "argv",
    "url",
    "string",
    "integer",
    "number",
    "boolean",
    "array",
    "object",
    "null",
    "any",
]
"""What a canonical argument is, so a policy predicate knows its subject: ``path`` a
root-relative path (``paths`` a list of them), ``argv`` the words of a command, ``url`` a
normalized URL, the JSON types for typed arguments, ``any`` when nothing is declared."""

Kinds = Mapping[str, frozenset[ArgKind]]
"""Canonical argument name -> the kinds its value may have (several for a union)."""


@dataclass(slots=True)  # built per call: frozen dataclasses cost ~1 µs each
class Canonical:
    """One call as its tool will execute it.

    ``arguments`` is the JSON form that policy judges, the call hash covers, approvers see
    and the trace records; ``plan`` is the tool's own executable form of the same call,
    built alongside it (None: rebuilt from ``arguments``, e.g. for a call answered from a
    record). Executing a canonical call never re-reads the model's raw text.
    """

    arguments: dict[str, Any]
    plan: Any = None


class ScopeViolation(Exception):
    """A call would leave its scope. Raised before any side effect, with the exact reason.

    ``failure_class`` is ``invalid_arguments`` when the arguments cannot even be
    interpreted (a shell line that does not parse, a URL that is not a URL).
    """

    def __init__(self, message: str, *, failure_class: ToolFailure = "policy_denied") -> None:
        super().__init__(message)
        self.message = message
        self.failure_class: ToolFailure = failure_class


class ToolTimeout(Exception):
    """Raised inside a tool when its time limit ran out; becomes ``failure_class="timeout"``."""


class ToolConfigError(GovrunError):
    """A tool cannot be built from its configuration (bad scope, missing callable, ...)."""


class UnknownToolError(ToolConfigError, LookupError):
    """``uses:`` names no builtin tool. The message lists the ones that exist."""


@runtime_checkable
class Tool(Protocol):
    """A tool the loop can offer to the model and run inside its scope."""

    name: str
    description: str
    args_model: type[BaseModel]

    def json_schema(self) -> dict[str, Any]:
        """The OpenAI function ``parameters`` schema for the arguments."""
        ...

    def argument_kinds(self) -> Kinds:
        """The kinds of the canonical arguments (what policy predicates may test)."""
        ...

    def canonicalize(self, args: BaseModel) -> Canonical:
        """The exact call the tool would execute, or ``ScopeViolation`` if it leaves the
        scope. No side effects."""
        ...

    def check(self, args: BaseModel) -> None:
        """Raise ``ScopeViolation`` if the call leaves the scope. Pure: no side effects."""
        ...

    def run_canonical(self, call: Canonical) -> ToolResult:
        """Perform exactly ``call``, enforcing the scope again as it acts. Never raises."""
        ...

    def run(self, args: BaseModel) -> ToolResult:
        """Canonicalize, then perform the call. Never raises."""
        ...


class ArgsModel(BaseModel):
    """Base for tool arguments: unknown (hallucinated) names and type coercion both fail."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def parameters_schema(model: type[BaseModel]) -> dict[str, Any]:
    """JSON schema of an args model as an OpenAI function ``parameters`` object: a fresh
    copy each time, of a schema generated once per model (pydantic takes a millisecond)."""
    return copy.deepcopy(_schema(model))


@functools.lru_cache(maxsize=512)
def _schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    schema.pop("title", None)
    schema.setdefault("properties", {})
    schema["additionalProperties"] = False
    return schema


def parse_arguments(tool: Tool, raw: str | Mapping[str, Any] | BaseModel) -> BaseModel:
    """Validate raw model arguments (JSON text or a mapping) into ``tool.args_model``.

    Raises ``ScopeViolation(failure_class="invalid_arguments")`` with pydantic's per-field
    explanation, so the loop can classify malformed calls without knowing pydantic.

    A mapping goes straight to the model's validator: exactly ``model_validate`` without
    its wrapper, which costs as much again as validating a few arguments.
    """
    try:
        if type(raw) is not dict:
            if isinstance(raw, str):
                return tool.args_model.model_validate_json(raw)
            if isinstance(raw, BaseModel):
                raw = raw.model_dump()
        return tool.args_model.__pydantic_validator__.validate_python(raw)
    except ValidationError as exc:
        raise ScopeViolation(
            f"invalid arguments for {tool.name}: {_explain(exc)}",
            failure_class="invalid_arguments",
        ) from None


def _explain(exc: ValidationError) -> str:
    """One short line per field problem, without pydantic's URLs."""
    parts = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "arguments"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def clip(text: str, limit: int, *, already_dropped: int = 0) -> tuple[str, bool]:
    """Cut ``text`` to at most ``limit`` UTF-8 bytes (on a character boundary) and say how
    much was dropped, so the model knows it did not see everything.

    ``already_dropped`` counts bytes the caller never read (a file or stream cut earlier),
    so the single marker reports the whole loss.
    """
    raw = text.encode("utf-8")
    kept = raw[:limit].decode("utf-8", errors="ignore") if len(raw) > limit else text
    dropped = len(raw) - len(kept.encode("utf-8")) + already_dropped
    if dropped <= 0:
        return text, False
    return f"{kept}\n[truncated {dropped} bytes]", True


class BaseTool(ABC):
    """Shared plumbing: argument coercion, re-check before run, and error classification.

    Subclasses set ``args_model`` and ``kinds`` and implement ``_canonical`` (validated
    arguments -> :class:`Canonical`, no side effects), ``_plan`` (a canonical call's JSON
    arguments -> its executable plan, re-validated: they may come from a record) and
    ``_execute`` (runs a plan). ``_execute`` may raise ``ScopeViolation`` (a late denial,
    e.g. a symlink swapped in after the decision), ``ToolTimeout``, or any exception (a
    tool error).
    """

    args_model: type[BaseModel]
    kinds: Kinds = MappingProxyType({})
    """The kinds of the canonical arguments (a class constant for the builtins)."""
    default_description: ClassVar[str] = ""
    undo_options: ClassVar[tuple[str, ...]] = ()
    """Rollback options ``from_scope`` accepts (see :func:`build_builtin`)."""

    def __init__(
        self, *, name: str, description: str | None, timeout_s: float, max_output_bytes: int
    ) -> None:
        if timeout_s <= 0 or max_output_bytes <= 0:
            raise ToolConfigError(f"tool {name!r}: timeout_s and max_output_bytes must be positive")
        self.name = name
        self.description = description or self.default_description
        self.timeout_s = float(timeout_s)
        self.max_output_bytes = int(max_output_bytes)

    def json_schema(self) -> dict[str, Any]:
        return parameters_schema(self.args_model)

    def argument_kinds(self) -> Kinds:
        return self.kinds

    def canonicalize(self, args: BaseModel) -> Canonical:
        return self._canonical(self._coerce(args))

    def check(self, args: BaseModel) -> None:
        self.canonicalize(args)

    def run_canonical(self, call: Canonical) -> ToolResult:
        try:  # not through _safely: a closure per call costs as much as a cheap tool
            plan = call.plan if call.plan is not None else self._plan(call.arguments)
            return self._execute(plan)
        except Exception as exc:  # the tool boundary: every error becomes a typed result
            return self._failed(exc)

    def run(self, args: BaseModel) -> ToolResult:
        try:
            call = self._canonical(self._coerce(args))
        except Exception as exc:  # a scope denial or a check that broke: a typed result
            return self._failed(exc)
        return self.run_canonical(call)

    def _safely(self, action: Callable[[], ToolResult]) -> ToolResult:
        """Run ``action`` with :meth:`run`'s error classification (for other entry points,
        such as a shell tool running its undo command)."""
        try:
            return action()
        except Exception as exc:  # the tool boundary: every error becomes a typed result
            return self._failed(exc)

    def _failed(self, exc: Exception) -> ToolResult:
        """The typed result of an error raised by a call: a late denial, a timeout, or any
        other exception as a tool error."""
        if isinstance(exc, ScopeViolation):
            return ToolResult.failure(exc.failure_class, exc.message)
        if isinstance(exc, ToolTimeout):
            return ToolResult.failure("timeout", str(exc) or f"timed out after {self.timeout_s}s")
        return ToolResult.failure("tool_error", f"{type(exc).__name__}: {exc}")

    def _coerce(self, args: BaseModel) -> BaseModel:
        """Accept only this tool's args model; anything else is re-validated from scratch."""
        if type(args) is self.args_model:
            return args
        return parse_arguments(self, args)

    def _clip(self, text: str, *, already_dropped: int = 0) -> tuple[str, bool]:
        return clip(text, self.max_output_bytes, already_dropped=already_dropped)

    @abstractmethod
    def _canonical(self, args: Any) -> Canonical: ...

    @abstractmethod
    def _plan(self, arguments: Mapping[str, Any]) -> Any: ...

    @abstractmethod
    def _execute(self, plan: Any) -> ToolResult: ...


# --- the builtin registry ----------------------------------------------------------------

BUILTIN_TOOLS: dict[str, str] = {
    "fs.read": "govrun.runtime.tools.fs:FsRead",
    "fs.write": "govrun.runtime.tools.fs:FsWrite",
    "fs.list": "govrun.runtime.tools.fs:FsList",
    "fs.delete": "govrun.runtime.tools.fs:FsDelete",
    "shell": "govrun.runtime.tools.shell:ShellTool",
    "http.get": "govrun.runtime.tools.http:HttpGet",
}
"""Short name -> ``module:Class``. Imported lazily so ``govrun --help`` stays fast and an
unused tool's dependencies (httpx) are never loaded."""


HARDLINK_TOOLS = frozenset({"fs.read", "fs.write", "fs.list", "fs.delete", "shell"})
"""Builtins that refuse files with several hard links unless ``scope.hardlinks: allow``."""


def build_builtin(
    uses: str,
    *,
    name: str,
    description: str | None = None,
    roots: list[Path] | None = None,
    commands: dict[str, Any] | None = None,
    hosts: list[str] | None = None,
    cwd: Path | None = None,
    timeout_s: float = 30.0,
    max_output_bytes: int = 65536,
    undo: str | None = None,
    undo_max_bytes: int | None = None,
    hardlinks: bool = False,
) -> Tool:
    """Build the builtin tool registered as ``uses`` with plain scope values.

    Each class takes the keyword arguments it needs through ``from_scope``; an unknown
    ``uses`` raises ``UnknownToolError`` listing what exists, with a did-you-mean. The
    rollback options reach only the tools that take them (``undo``: shell;
    ``undo_max_bytes``: fs.write, fs.delete), and are refused elsewhere.
    """
    cls = _builtin_class(uses)
    factory: Callable[..., Tool] = cls.from_scope
    extra: dict[str, Any] = {"hardlinks": True} if hardlinks else {}
    if undo is not None:
        extra["undo"] = undo
    if undo_max_bytes is not None:
        extra["undo_max_bytes"] = undo_max_bytes
    options = {key for key in extra if key != "hardlinks"}
    if options and not options <= set(getattr(cls, "undo_options", ())):
        raise ToolConfigError(
            f"tool {name!r}: {uses} takes no {' or '.join(sorted(options))} "
            "(undo: shell only; undo_max_bytes: fs.write and fs.delete only)"
        )
    if hardlinks and uses not in HARDLINK_TOOLS:
        raise ToolConfigError(f"tool {name!r}: {uses} reads no files, so it takes no hardlinks")
    return factory(
        name=name,
        description=description,
        roots=list(roots or []),
        commands=dict(commands or {}),
        hosts=list(hosts or []),
        cwd=cwd,
        timeout_s=timeout_s,
        max_output_bytes=max_output_bytes,
        **extra,
    )


def builtin_kinds(uses: str) -> Kinds:
    """The canonical arguments' kinds of the builtin registered as ``uses``."""
    return dict(_builtin_class(uses).kinds)


def _builtin_class(uses: str) -> Any:
    target = BUILTIN_TOOLS.get(uses)
    if target is None:
        available = ", ".join(sorted(BUILTIN_TOOLS))
        close = difflib.get_close_matches(uses, BUILTIN_TOOLS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UnknownToolError(f"unknown builtin tool {uses!r}.{hint} Available: {available}")
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)
