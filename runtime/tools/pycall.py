"""Python callables as tools: ``python: mypkg.tools:add`` in the manifest.

The function's signature becomes a closed pydantic arguments model, so the model gets a
real JSON schema and hallucinated or mistyped arguments fail before the call. The callable
is operator code and is trusted; its *arguments* are not. Exceptions become ``tool_error``
results showing only the exception type and message, never a traceback. What it prints is
evidence of the call (``evidence.printed``), never govrun's output: see :mod:`.printed`.
"""

from __future__ import annotations

# The C module behind `signal`, without its enum conversions (~15 µs per call here).
import _signal
import asyncio
import contextlib
import difflib
import functools
import hashlib
import importlib
import inspect
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any, Literal

import pydantic_core
from pydantic import BaseModel, ConfigDict, Field, PydanticSchemaGenerationError, create_model

from govrun.runtime.tools import printed as prints
from govrun.runtime.tools.base import (
    BaseTool,
    Canonical,
    Kinds,
    ToolConfigError,
    ToolResult,
    ToolTimeout,
)
from govrun.runtime.tools.printed import Printed
from govrun.runtime.tools.pyprocess import ProcessCaller, WorkerFailure
from govrun.runtime.tools.schema_kinds import json_schema_kinds

_SPEC = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")


def load_python_tool(
    spec: str,
    *,
    name: str,
    description: str | None = None,
    timeout_s: float = 30.0,
    max_output_bytes: int = 65536,
    isolation: Literal["inline", "process"] = "inline",
) -> PythonTool:
    """Import ``package.module:function`` and wrap it as a tool named ``name``; with
    ``isolation="process"`` its calls run in a worker process (see :mod:`.pyprocess`).

    Raises ``ToolConfigError`` with a clear message if the module or attribute is missing,
    the target is not a function, or its signature cannot become an arguments model.
    """
    func = import_callable(spec, tool=name)
    return PythonTool(
        func,
        spec=spec,
        name=name,
        description=description,
        timeout_s=timeout_s,
        max_output_bytes=max_output_bytes,
        isolation=isolation,
    )


def import_callable(spec: str, *, tool: str) -> Callable[..., Any]:
    if not _SPEC.fullmatch(spec):
        raise ToolConfigError(
            f"tool {tool!r}: python: {spec!r} must look like 'package.module:function'"
        )
    module_name, _, attr_path = spec.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:  # a broken module must not crash manifest loading
        raise ToolConfigError(
            f"tool {tool!r}: cannot import module {module_name!r}: {type(exc).__name__}: {exc}"
        ) from None
    for part in attr_path.split("."):
        if not hasattr(obj, part):
            close = difflib.get_close_matches(part, [n for n in dir(obj) if n[0] != "_"], n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ToolConfigError(f"tool {tool!r}: {spec!r}: no attribute {part!r}.{hint}")
        obj = getattr(obj, part)
    if inspect.isclass(obj) or not callable(obj):
        raise ToolConfigError(f"tool {tool!r}: {spec!r} is not a function")
    return obj


def build_args_model(func: Callable[..., Any], *, tool: str) -> type[BaseModel]:
    """A closed model with one field per parameter; the field's alias is the parameter name
    (internal names avoid clashes with ``BaseModel`` attributes like ``json``). Built once
    per function and tool name: pydantic's model creation costs a millisecond per run."""
    try:
        return _cached_args_model(func, tool)
    except TypeError as exc:  # an unhashable callable object: build it every time
        if "unhashable" not in str(exc):
            raise
        return _args_model(func, tool)


def _args_model(func: Callable[..., Any], tool: str) -> type[BaseModel]:
    try:
        params = inspect.signature(func, eval_str=True).parameters.values()
    except (NameError, TypeError, ValueError, SyntaxError) as exc:
        raise ToolConfigError(
            f"tool {tool!r}: cannot read the signature of {_qualname(func)}: {exc}"
        ) from None
    fields: dict[str, Any] = {}
    for i, p in enumerate(params):
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            star = "*" if p.kind is p.VAR_POSITIONAL else "**"
            raise ToolConfigError(
                f"tool {tool!r}: {_qualname(func)}: parameter {star}{p.name} is not supported; "
                "tool arguments must be named parameters"
            )
        annotation = Any if p.annotation is p.empty else p.annotation
        default = ... if p.default is p.empty else p.default
        fields[f"arg{i}"] = (annotation, Field(default, alias=p.name))
    try:
        return create_model(
            f"{tool}_args", __config__=ConfigDict(extra="forbid", frozen=True), **fields
        )
    except (PydanticSchemaGenerationError, TypeError) as exc:
        raise ToolConfigError(
            f"tool {tool!r}: {_qualname(func)} has an unsupported parameter type: {exc}"
        ) from None


_cached_args_model = functools.lru_cache(maxsize=256)(_args_model)


def schema_kinds(model: type[BaseModel]) -> Kinds:
    """Each argument's kinds, read from the JSON schema the model is shown: what policy
    predicates on it may test."""
    return json_schema_kinds(model.model_json_schema(by_alias=True))


def _qualname(func: Callable[..., Any]) -> str:
    return getattr(func, "__qualname__", None) or repr(func)


def docstring_summary(func: Callable[..., Any]) -> str:
    """The first paragraph of the docstring, on one line."""
    doc = inspect.getdoc(func) or ""
    return " ".join(doc.split("\n\n", 1)[0].split())


class PythonTool(BaseTool):
    """A trusted Python callable with untrusted, schema-validated arguments."""

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        spec: str,
        name: str,
        description: str | None,
        timeout_s: float,
        max_output_bytes: int,
        isolation: Literal["inline", "process"] = "inline",
    ) -> None:
        super().__init__(
            name=name,
            description=description or docstring_summary(func) or f"Calls {spec}.",
            timeout_s=timeout_s,
            max_output_bytes=max_output_bytes,
        )
        self.func = func
        self.spec = spec
        self.args_model = build_args_model(func, tool=name)
        self.kinds = schema_kinds(self.args_model)
        # How each args-model field (argN) reaches the function, worked out once.
        params = list(inspect.signature(func).parameters.values())
        self._positional = tuple(
            f"arg{i}" for i, p in enumerate(params) if p.kind is p.POSITIONAL_ONLY
        )
        self._keyword = tuple(
            (f"arg{i}", p.name) for i, p in enumerate(params) if p.kind is not p.POSITIONAL_ONLY
        )
        self.isolation = isolation
        self._process = (
            ProcessCaller(
                spec, tool=name, timeout_s=self.timeout_s, max_output_bytes=max_output_bytes
            )
            if isolation == "process"
            else None
        )

    def _canonical(self, args: BaseModel) -> Canonical:
        """The arguments as the function receives them: coerced to their declared types
        (``"5"`` is ``5`` for an ``int``), defaults filled in, in JSON form."""
        return Canonical(args.model_dump(mode="json", by_alias=True), args)

    def _plan(self, arguments: Mapping[str, Any]) -> BaseModel:
        return self.args_model.model_validate(dict(arguments))

    def _execute(self, args: BaseModel) -> ToolResult:
        if self._process is not None:
            return self._execute_in_process(args)
        positional, keyword = self._call_args(args)
        printed = Printed(self.max_output_bytes)
        outer = prints.start(printed)  # what it prints is evidence, never govrun's output
        try:
            result = _call_with_timeout(self.func, positional, keyword, self.timeout_s, printed)
            text, jsonable = _serialize(result)
        except Exception as exc:
            return self._with_printed(self._failed(exc), printed)
        finally:
            prints.end(printed, outer)
        said = printed.evidence()
        if said is None:
            return self._result(text, jsonable)
        return self._result(text, jsonable, printed=said)

    @staticmethod
    def _with_printed(result: ToolResult, printed: Printed) -> ToolResult:
        """A failed inline call keeps what it printed, as a failed worker call does."""
        said = printed.evidence()
        if said is None:
            return result
        return result.model_copy(update={"evidence": {**result.evidence, "printed": said}})

    def _result(self, text: str, jsonable: Any, **evidence: Any) -> ToolResult:
        encoded = text.encode("utf-8")
        if len(encoded) <= self.max_output_bytes:  # what _clip returns, without re-encoding
            shown, truncated = text, False
        else:
            shown, truncated = self._clip(text)
        data = {} if truncated else {"result": jsonable}
        digest = hashlib.sha256(encoded).hexdigest()
        facts = {"callable": self.spec, "result_sha256": digest, **evidence}
        return ToolResult.succeeded(shown, data, facts, truncated)

    def _execute_in_process(self, args: BaseModel) -> ToolResult:
        """As inline, from the worker's text and JSON-able result, plus where it ran and
        what it printed (evidence only: the model is shown the result, as inline). The
        worker gets the canonical arguments: the JSON form of ``args``."""
        text, jsonable = self._call_in_process(args.model_dump(mode="json", by_alias=True))
        printed = self._process.printed() if self._process else None
        return self._result(text, jsonable, **self._process_evidence(printed))

    def _call_in_process(self, arguments_json: dict[str, Any]) -> tuple[str, Any]:
        """One call in the worker process, with arguments keyed by parameter name: the
        result as text and as a JSON-able value (raises ``WorkerFailure``)."""
        assert self._process is not None, "only under isolation: process"
        return self._process.call(arguments_json)

    @staticmethod
    def _process_evidence(printed: dict[str, Any] | None) -> dict[str, Any]:
        return {"isolation": "process", **({"printed": printed} if printed else {})}

    def _failed(self, exc: Exception) -> ToolResult:
        """A worker's failure is already ``Type: message``, and keeps what it printed."""
        if not isinstance(exc, WorkerFailure):
            return super()._failed(exc)
        failure = "timeout" if isinstance(exc, ToolTimeout) else "tool_error"
        evidence = {"callable": self.spec, **self._process_evidence(exc.printed)}
        return ToolResult.failure(failure, str(exc), evidence=evidence)

    def close(self) -> None:
        """Stop the worker process, if one runs (inline: nothing to do)."""
        if self._process is not None:
            self._process.close()

    def _call_args(self, args: BaseModel) -> tuple[list[Any], dict[str, Any]]:
        """The function's positional-only and keyword arguments, in signature order (plain
        loops: a comprehension is one more frame per call)."""
        positional: list[Any] = []
        for field in self._positional:
            positional.append(getattr(args, field))
        keyword: dict[str, Any] = {}
        for field, name in self._keyword:
            keyword[name] = getattr(args, field)
        return positional, keyword


class _Deadline(BaseException):
    """Raised inside an overrunning call by the interval timer. A BaseException, so the
    tool's own ``except Exception`` cannot swallow it."""


_UNCLAIMED = (_signal.SIG_DFL, _signal.SIG_IGN, None)
"""SIGALRM handlers that mean nobody else uses the interval timer, so a call may."""


def _expire(signum: int, frame: object) -> None:
    raise _Deadline


def _call_with_timeout(
    func: Callable[..., Any],
    args: list[Any],
    kwargs: dict[str, Any],
    timeout_s: float,
    printed: Printed | None = None,
) -> Any:
    """Call with a deadline. On the main thread an interval timer interrupts the call
    itself (and costs ~1.5 µs); elsewhere the call runs in a worker thread that Python
    cannot kill, so an overrun is reported as a timeout but keeps running (what it prints
    after that is no longer captured)."""
    if (
        threading.current_thread() is threading.main_thread()
        and _signal.getsignal(_signal.SIGALRM) in _UNCLAIMED
    ):
        return _call_with_alarm(func, args, kwargs, timeout_s)
    return _call_in_thread(func, args, kwargs, timeout_s, printed)


def _call_with_alarm(
    func: Callable[..., Any], args: list[Any], kwargs: dict[str, Any], timeout_s: float
) -> Any:
    previous = _signal.signal(_signal.SIGALRM, _expire)
    _signal.setitimer(_signal.ITIMER_REAL, timeout_s)
    try:
        value = func(*args, **kwargs)
        if _awaitable(value):
            value = asyncio.run(_await_with_timeout(value, timeout_s))
        return value
    except _Deadline:
        raise ToolTimeout(f"Python tool did not return within {timeout_s}s") from None
    except TimeoutError:
        raise ToolTimeout(f"Python tool did not return within {timeout_s}s") from None
    except (SystemExit, GeneratorExit) as exc:  # a tool may not end govrun
        raise RuntimeError(f"the tool raised {type(exc).__name__}") from None
    finally:
        _signal.setitimer(_signal.ITIMER_REAL, 0)
        _signal.signal(_signal.SIGALRM, previous)


def _call_in_thread(
    func: Callable[..., Any],
    args: list[Any],
    kwargs: dict[str, Any],
    timeout_s: float,
    printed: Printed | None = None,
) -> Any:
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            with prints.attributed(printed) if printed is not None else contextlib.nullcontext():
                value = func(*args, **kwargs)
                if _awaitable(value):
                    value = asyncio.run(_await_with_timeout(value, timeout_s))
            box["value"] = value
        except BaseException as exc:  # carried to the caller's thread below
            box["error"] = exc

    worker = threading.Thread(target=target, name="govrun-pycall", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        raise ToolTimeout(f"Python tool did not return within {timeout_s}s")
    error = box.get("error")
    if isinstance(error, TimeoutError):
        raise ToolTimeout(f"Python tool did not return within {timeout_s}s")
    if error is not None and not isinstance(error, Exception):
        raise RuntimeError(f"the tool raised {type(error).__name__}")
    if error is not None:
        raise error
    return box.get("value")


_PLAIN = frozenset({int, float, str, bool, bytes, type(None), list, tuple, dict, set})
"""Result types that are never awaitable: most results, spared ``inspect.isawaitable``."""


def _awaitable(value: Any) -> bool:
    """``inspect.isawaitable``, answered at once for the plain types most tools return."""
    return type(value) not in _PLAIN and inspect.isawaitable(value)


async def _await_with_timeout(awaitable: Any, timeout_s: float) -> Any:
    return await asyncio.wait_for(awaitable, timeout_s)


_I64 = 2**63
"""Ints in [-_I64, _I64) are written by pydantic_core exactly as ``str`` writes them."""


def _serialize(result: Any) -> tuple[str, Any]:
    """Text for the model (strings as-is, everything else as JSON) and a JSON-able copy.
    A plain str or a machine-sized int, the commonest results, skip pydantic_core: it
    returns them as they are and writes such an int as ``str`` does."""
    kind = type(result)
    if kind is str:
        return result, result
    if kind is int and -_I64 <= result < _I64:
        return str(result), result
    jsonable = pydantic_core.to_jsonable_python(result, fallback=str)
    if isinstance(result, str):
        return result, jsonable
    return pydantic_core.to_json(result, fallback=str).decode("utf-8"), jsonable
