"""Verification: each check turns what a call or a run did into evidence and a verdict.

A check never raises and never trusts the model: paths come from manifest templates filled
with the call's arguments, so every path is resolved (``..`` and symlinks included) and must
stay inside the roots it resolves against — a check must not become a way to read arbitrary
files. A check that cannot find the evidence it needs (no exit code, no hash from the call,
an argument the call did not have) fails with ``missing_evidence``; one that finds evidence
contradicting it fails with ``verification_failed``. A check with ``required: false`` is
still recorded, but with no failure class, so nothing fails on it.

Deterministic: outcomes depend only on the checks, the call and the files — no clock, no
environment, no absolute paths in evidence (paths are shown relative to their root).
"""

from __future__ import annotations

import codecs
import copy
import errno
import functools
import hashlib
import importlib
import json
import os
import re
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from govrun.runtime.manifest.checks import FILE_CHECKS
from govrun.runtime.manifest.patterns import cached_pattern
from govrun.runtime.manifest.schema import (
    Check,
    ExitCodeCheck,
    FileContainsCheck,
    FileExistsCheck,
    FileSha256Check,
    FinalAnswerMatchesCheck,
    Manifest,
    OutputMatchesCheck,
    OutputSchemaCheck,
    PythonCheck,
)
from govrun.runtime.manifest.workspace import WorkspaceCopy
from govrun.runtime.tools.base import ToolResult
from govrun.runtime.trace.events import Verification

if TYPE_CHECKING:
    import jsonschema

    from govrun.runtime.govern.toolbox import PreparedCall

VerifyFailure = Literal["verification_failed", "missing_evidence"]

MAX_READ_BYTES = 8 * 1024 * 1024
"""``file_contains`` searches at most this much of a file."""
MAX_SCHEMA_ERRORS = 3
"""``output_schema`` lists at most this many validation errors."""
SHOWN_CHARS = 200
"""Matched text and error messages kept in evidence are cut to this many characters."""

_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
_CHUNK = 1 << 16
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_ARG_PLACEHOLDER = re.compile(r"args\.([A-Za-z_][A-Za-z0-9_]*)")


_DICT_KEYS = frozenset({"passed", "detail", "evidence"})


@dataclass(frozen=True)
class CheckOutcome:
    """One check's verdict and what it observed."""

    check: str
    """Check kind, e.g. ``file_exists`` (defaults use ``file_absent``/``http_status`` too)."""
    check_id: str | None
    """The manifest ``id``, or ``"default"`` for a builtin's default evidence."""
    passed: bool
    required: bool
    evidence: dict[str, Any]
    """What was observed: path, exists, sha256, size, exit code, match span, schema errors."""
    detail: str
    """One sentence for people and for the model."""
    failure_class: VerifyFailure | None
    """Set when a *required* check did not pass; callers fail the call or run on it."""

    def to_event(self, *, call_id: str | None, step: int = 0) -> Verification:
        """The trace event recording this outcome (``call_id`` None for `success:` checks)."""
        return Verification(
            step=step,
            call_id=call_id,
            check=self.check,
            check_id=self.check_id,
            passed=self.passed,
            evidence=self.evidence,
            detail=self.detail,
            failure_class=self.failure_class,
        )


@dataclass(frozen=True)
class CallContext:
    """What a per-call check can see."""

    tool: str
    arguments: dict[str, Any]
    result: ToolResult
    roots: list[Path] = field(default_factory=list)
    """The tool's resolved scope roots; relative check paths resolve against the first."""


class LiveVerifier:
    """The live ``Verifier`` port: every check looks at the world as it is now, and the
    run's ``success:`` file checks also at how the run found each file (:func:`baseline`,
    taken when the verifier is made, before the first step)."""

    def __init__(self, manifest: Manifest) -> None:
        self.m = manifest
        self._before = baseline(manifest.success, manifest.base_dir, manifest.workspace_copy)

    def check_call(self, call: PreparedCall, result: ToolResult) -> list[CheckOutcome]:
        ctx = CallContext(
            tool=call.name,
            arguments=call.arguments,
            result=result,
            roots=[self.m.resolve_path(r) for r in call.spec.scope.roots or []],
        )
        outcomes = verify_call(
            call.spec.verify, ctx, base_dir=self.m.base_dir, workspace=self.m.workspace_copy
        )
        default = default_evidence_outcome(call.spec.uses, ctx)
        return outcomes if default is None else [default, *outcomes]

    def check_success(self, final_answer: str | None) -> list[CheckOutcome]:
        return verify_success(
            self.m.success,
            final_answer=final_answer,
            base_dir=self.m.base_dir,
            workspace=self.m.workspace_copy,
            before=self._before,
        )


@dataclass(frozen=True, slots=True)
class Before:
    """A file as the run found it. Its identity (inode, size, times) is compared, never
    recorded: a rewrite with the same bytes is a change the run made."""

    identity: tuple[int, ...] | None
    """None when nothing was there."""


def baseline(
    checks: Sequence[Check], base_dir: Path, workspace: WorkspaceCopy | None = None
) -> dict[Path, Before]:
    """How the run finds the files its ``success:`` checks name, before it acts: so a check
    can tell a file this run made from one an earlier run left (``fresh``)."""
    files = [c for c in checks if isinstance(c, FILE_CHECKS)]
    if not files:
        return {}
    scene = _manifest_scene(None, None, base_dir, workspace)
    found: dict[Path, Before] = {}
    for check in files:
        try:
            loc = _check_path(check.path, scene)
        except _Stop:
            continue  # the check itself reports the path it cannot use
        found[loc.path] = Before(_identity(loc.path))
    return found


def _identity(path: Path) -> tuple[int, ...] | None:
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def verify_call(
    checks: Sequence[Check],
    ctx: CallContext,
    *,
    base_dir: Path,
    workspace: WorkspaceCopy | None = None,
) -> list[CheckOutcome]:
    """Run a tool's ``verify:`` checks against one call, in order.

    Checks run whatever ``ctx.result.ok`` says; callers usually skip failed calls. Paths
    resolve against the tool's first root and must stay inside its roots; for a tool without
    roots, as ``success:`` paths do (see :func:`verify_success`).
    """
    if not checks:  # the common case: resolving roots costs syscalls for nothing
        return []
    if ctx.roots:
        scene = _Scene(ctx, None, _resolve_roots(ctx.roots), "the tool's roots")
    else:
        scene = _manifest_scene(ctx, None, base_dir, workspace)
    return [_verify(check, scene) for check in checks]


def verify_success(
    checks: Sequence[Check],
    *,
    final_answer: str | None,
    base_dir: Path,
    workspace: WorkspaceCopy | None = None,
    before: Mapping[Path, Before] | None = None,
) -> list[CheckOutcome]:
    """Run the manifest's ``success:`` checks. Paths resolve inside ``base_dir``, the
    manifest folder; one naming the workspace template, in the run's copy of it.
    ``before``: the run's :func:`baseline`, which file checks compare with (evidence
    ``before_run``; ``fresh: true`` fails on a file the run did not write)."""
    if not checks:
        return []
    scene = _manifest_scene(None, final_answer, base_dir, workspace, before)
    return [_verify(check, scene) for check in checks]


def _manifest_scene(
    call: CallContext | None,
    final_answer: str | None,
    base_dir: Path,
    workspace: WorkspaceCopy | None,
    before: Mapping[Path, Before] | None = None,
) -> _Scene:
    """Checks that read paths as the manifest writes them: from its folder, with the
    workspace template meaning the run's copy (shown as ``<template name>/...``)."""
    if workspace is None:
        roots = _resolve_roots([base_dir])
        return _Scene(call, final_answer, roots, "the manifest folder", before=before)
    roots = _resolve_roots([workspace.folder, base_dir])
    return _Scene(
        call, final_answer, roots, "the manifest folder", place=workspace.place, before=before
    )


def default_evidence_outcome(uses: str | None, ctx: CallContext) -> CheckOutcome | None:
    """The evidence a builtin must always leave, checked (``check_id="default"``).

    ``fs.write``: the written file still hashes to the sha256 the write reported.
    ``fs.delete``: the path no longer exists. ``shell``: an exit code was reported.
    ``http.get``: an HTTP status was reported. None for other tools and for failed calls
    (there is nothing to verify: the call already failed).
    """
    rule = _DEFAULTS.get(uses or "")
    if rule is None or not ctx.result.ok:
        return None
    kind, run = rule
    scene = _Scene(ctx, None, _resolve_roots(ctx.roots), "the tool's roots")
    try:
        verdict = run(ctx, scene)
    except _Stop as stop:
        verdict = stop.verdict
    return _outcome(kind, "default", True, verdict)


# --- machinery ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Scene:
    """Where a check looks: the call (None for success checks), and the roots paths stay in."""

    call: CallContext | None
    final_answer: str | None
    roots: tuple[Path, ...]
    where: str
    place: Callable[[Path], Path] | None = None
    """Moves a path into the run's workspace copy (see ``WorkspaceCopy.place``); relative
    paths then resolve against the last root, the manifest folder."""
    before: Mapping[Path, Before] | None = None
    """How the run found the files (success checks of a live run); None: not known."""


@dataclass(frozen=True)
class _Verdict:
    passed: bool
    detail: str
    evidence: dict[str, Any]
    failure: VerifyFailure = "verification_failed"


class _Stop(Exception):
    """Ends a check early with a failed verdict (escape, missing argument, unreadable file)."""

    def __init__(
        self, failure: VerifyFailure, detail: str, evidence: dict[str, Any] | None = None
    ) -> None:
        super().__init__(detail)
        self.verdict = _Verdict(False, detail, evidence or {}, failure)


def _verify(check: Any, scene: _Scene) -> CheckOutcome:
    handler = _HANDLERS[type(check)]
    try:
        verdict = handler(check, scene)
    except _Stop as stop:
        verdict = stop.verdict
    return _outcome(check.check, check.id, check.required, verdict)


def _outcome(kind: str, check_id: str | None, required: bool, verdict: _Verdict) -> CheckOutcome:
    failed = not verdict.passed and required
    return CheckOutcome(
        check=kind,
        check_id=check_id,
        passed=verdict.passed,
        required=required,
        evidence=verdict.evidence,
        detail=verdict.detail,
        failure_class=verdict.failure if failed else None,
    )


def _resolve_roots(roots: Sequence[Path]) -> tuple[Path, ...]:
    return tuple(Path(root).resolve(strict=False) for root in roots)


# --- paths: templates, resolution, confinement ----------------------------------------------


@dataclass(frozen=True)
class _Located:
    path: Path
    """Resolved absolute path (never recorded: it differs between machines)."""
    shown: str
    """Relative to the root it is in, as recorded in evidence and details."""


def _expand(template: str, scene: _Scene) -> str:
    """Fill ``{args.NAME}`` placeholders from the call's arguments; anything else is refused."""

    def fill(match: re.Match[str]) -> str:
        inner = match.group(1)
        arg = _ARG_PLACEHOLDER.fullmatch(inner)
        if arg is None:
            raise _Stop(
                "missing_evidence",
                f"path {template!r} has unknown placeholder {{{inner}}}; "
                "only {args.NAME} placeholders exist",
                {"path_template": template},
            )
        name = arg.group(1)
        if scene.call is None:
            raise _Stop(
                "missing_evidence",
                f"check needs args.{name}, but success checks have no call arguments",
                {"path_template": template},
            )
        if name not in scene.call.arguments:
            raise _Stop(
                "missing_evidence",
                f"check needs args.{name}, which the call did not have",
                {"path_template": template},
            )
        return str(scene.call.arguments[name])

    return _PLACEHOLDER.sub(fill, template)


def _locate(text: str, scene: _Scene, *, follow_final: bool = True) -> _Located:
    """Resolve ``text`` (relative to the first root) and require it inside one of the roots.

    With ``follow_final=False`` the last component is kept literally (a deleted symlink is
    the link, not its target).
    """
    if not scene.roots:
        raise _Stop(
            "missing_evidence", f"cannot find {text!r}: the tool has no roots", {"path": text}
        )
    try:
        candidate = Path(text)
        if scene.place is not None:
            candidate = scene.place(scene.roots[-1] / candidate)
        elif not candidate.is_absolute():
            candidate = scene.roots[0] / candidate
        if follow_final or candidate.name in ("", ".", ".."):
            resolved = candidate.resolve(strict=False)
        else:
            resolved = candidate.parent.resolve(strict=False) / candidate.name
    except (OSError, RuntimeError, ValueError) as exc:  # symlink loop, NUL byte
        raise _Stop(
            "verification_failed", f"cannot resolve path {text!r}: {exc}", {"path": text}
        ) from None
    for root in scene.roots:
        if resolved.is_relative_to(root):
            return _Located(resolved, resolved.relative_to(root).as_posix() or ".")
    raise _Stop(
        "verification_failed",
        f"path {text!r} escapes {scene.where}; checks only read inside them",
        {"path": text, "escapes": True},
    )


def _check_path(template: str, scene: _Scene) -> _Located:
    return _locate(_expand(template, scene), scene)


# --- files ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _File:
    exists: bool
    regular: bool = False
    size: int | None = None
    sha256: str | None = None
    head: bytes = b""


def _examine(loc: _Located, *, keep: int = 0) -> _File:
    """Hash the whole file and keep its first ``keep`` bytes. Never follows a final symlink
    (resolution already did; one appearing since is refused) and never blocks on a FIFO."""
    try:
        fd = os.open(loc.path, _READ_FLAGS)
    except (FileNotFoundError, NotADirectoryError):
        return _File(exists=False)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _Stop(
                "verification_failed",
                f"{loc.shown} turned into a symlink after it was resolved; not following it",
                {"path": loc.shown},
            ) from None
        raise _Stop(
            "verification_failed",
            f"cannot read {loc.shown}: {exc.strerror or exc}",
            {"path": loc.shown},
        ) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return _File(exists=True)
        digest, head, size = hashlib.sha256(), bytearray(), 0
        while chunk := os.read(fd, _CHUNK):
            digest.update(chunk)
            size += len(chunk)
            if len(head) < keep:
                head += chunk[: keep - len(head)]
        return _File(True, True, size, digest.hexdigest(), bytes(head))
    except OSError as exc:
        raise _Stop(
            "verification_failed",
            f"cannot read {loc.shown}: {exc.strerror or exc}",
            {"path": loc.shown},
        ) from None
    finally:
        os.close(fd)


def _require_file(loc: _Located, facts: _File) -> None:
    if not facts.exists:
        raise _Stop(
            "verification_failed", f"{loc.shown} does not exist", _file_evidence(loc, facts)
        )
    if not facts.regular:
        raise _Stop(
            "verification_failed",
            f"{loc.shown} exists but is not a regular file",
            {**_file_evidence(loc, facts), "regular_file": False},
        )


def _file_evidence(loc: _Located, facts: _File) -> dict[str, Any]:
    return {"path": loc.shown, "exists": facts.exists, "size": facts.size, "sha256": facts.sha256}


def _describe(facts: _File) -> str:
    return f"{facts.size:,} bytes, sha256 {_short(facts.sha256)}"


def _short(digest: str | None) -> str:
    return f"{digest[:8]}…" if digest else "none"


def _clip(text: str) -> str:
    return text if len(text) <= SHOWN_CHARS else f"{text[:SHOWN_CHARS]}…"


def _match_evidence(match: Any) -> dict[str, Any] | None:
    if match is None:
        return None
    return {"start": match.start(), "end": match.end(), "text": _clip(match.group(0))}


def _span(match: Any) -> str:
    return f"at characters {match.start()}-{match.end()}"


# --- the check kinds ------------------------------------------------------------------------


def _file_exists(check: FileExistsCheck, scene: _Scene) -> _Verdict:
    loc = _check_path(check.path, scene)
    facts = _examine(loc)
    _require_file(loc, facts)
    verdict = _Verdict(True, f"{loc.shown} exists ({_describe(facts)})", _file_evidence(loc, facts))
    return _freshness(check, loc, scene, verdict)


_BEFORE_RUN = {
    "absent": "did not exist before the run",
    "changed": "existed before the run, changed during it",
    "unchanged": "existed before the run, unchanged",
}


def _freshness(check: Any, loc: _Located, scene: _Scene, verdict: _Verdict) -> _Verdict:
    """Say how the run found the file (evidence ``before_run``); with ``fresh: true`` a
    file the run did not create or change fails the check, whatever else held."""
    before = scene.before.get(loc.path) if scene.before is not None else None
    if before is None:
        if check.fresh:
            raise _Stop(
                "missing_evidence",
                f"{loc.shown}: no record of the file before the run to tell whether the run "
                "wrote it (fresh: true)",
                {**verdict.evidence, "fresh": True},
            )
        return verdict
    if before.identity is None:
        state = "absent"
    else:
        state = "unchanged" if _identity(loc.path) == before.identity else "changed"
    said = _BEFORE_RUN[state]
    evidence = {**verdict.evidence, "before_run": said}
    if check.fresh:
        evidence["fresh"] = True
    if check.fresh and state == "unchanged":
        return _Verdict(
            False,
            f"{loc.shown} {said}: this run did not write it (fresh: true)",
            evidence,
        )
    if state == "unchanged":
        return _Verdict(verdict.passed, f"{verdict.detail}; {said}", evidence, verdict.failure)
    return _Verdict(verdict.passed, verdict.detail, evidence, verdict.failure)


def _file_sha256(check: FileSha256Check, scene: _Scene) -> _Verdict:
    loc = _check_path(check.path, scene)
    if check.sha256 is not None:
        expected, source = check.sha256.lower(), "manifest"
    else:
        expected, source = _call_sha256(loc, scene), "call"
    facts = _examine(loc)
    _require_file(loc, facts)
    evidence = {**_file_evidence(loc, facts), "expected_sha256": expected, "expected_from": source}
    if facts.sha256 == expected:
        where = "as the manifest expects" if source == "manifest" else "as the call reported"
        verdict = _Verdict(True, f"{loc.shown} has sha256 {_short(expected)} {where}", evidence)
        return _freshness(check, loc, scene, verdict)
    return _Verdict(
        False,
        f"expected {loc.shown} to have sha256 {_short(expected)} (from the {source}); "
        f"got {_short(facts.sha256)}",
        evidence,
    )


def _call_sha256(loc: _Located, scene: _Scene) -> str:
    if scene.call is None:
        raise _Stop(
            "missing_evidence",
            f"no sha256 to compare {loc.shown} with: the check gives none and a success "
            "check has no call",
            {"path": loc.shown},
        )
    reported = scene.call.result.evidence.get("sha256")
    if not isinstance(reported, str) or not reported:
        raise _Stop(
            "missing_evidence",
            f"no sha256 to compare {loc.shown} with: the check gives none and the call "
            "reported none in its evidence",
            {"path": loc.shown},
        )
    return reported.lower()


def _file_contains(check: FileContainsCheck, scene: _Scene) -> _Verdict:
    loc = _check_path(check.path, scene)
    facts = _examine(loc, keep=MAX_READ_BYTES)
    _require_file(loc, facts)
    cut = (facts.size or 0) > len(facts.head)
    evidence = {
        **_file_evidence(loc, facts),
        "pattern": check.pattern,
        "searched_bytes": len(facts.head),
    }
    text = _utf8(facts.head, final=not cut)
    if text is None:
        return _Verdict(
            False,
            f"{loc.shown} is binary, not UTF-8 text; cannot search it for /{check.pattern}/",
            {**evidence, "binary": True},
        )
    match = cached_pattern(check.pattern).search(text)
    evidence["match"] = _match_evidence(match)
    if match is not None:
        verdict = _Verdict(True, f"{loc.shown} matches /{check.pattern}/ {_span(match)}", evidence)
        return _freshness(check, loc, scene, verdict)
    scope = f" in its first {MAX_READ_BYTES:,} bytes" if cut else ""
    return _Verdict(False, f"{loc.shown} does not match /{check.pattern}/{scope}", evidence)


def _utf8(data: bytes, *, final: bool) -> str | None:
    if b"\x00" in data:
        return None
    try:
        return codecs.getincrementaldecoder("utf-8")("strict").decode(data, final=final)
    except UnicodeDecodeError:
        return None


def _exit_code(check: ExitCodeCheck, scene: _Scene) -> _Verdict:
    result = _need_call(scene, "an exit code")
    code = _reported(result, "exit_code")
    if code is None:
        raise _Stop(
            "missing_evidence",
            f"expected exit code {check.equals}, but the call reported no exit code",
            {"expected": check.equals},
        )
    evidence = {"exit_code": code, "expected": check.equals}
    if code == check.equals:
        return _Verdict(True, f"exit code {code} as expected", evidence)
    return _Verdict(False, f"expected exit code {check.equals}; got {code}", evidence)


def _reported(result: ToolResult, key: str) -> int | None:
    """An integer the call reported in ``data`` (or, failing that, ``evidence``)."""
    for source in (result.data, result.evidence):
        value = source.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _need_call(scene: _Scene, what: str) -> ToolResult:
    if scene.call is None:
        raise _Stop("missing_evidence", f"success checks have no tool call, so no {what}")
    return scene.call.result


def _output_matches(check: OutputMatchesCheck, scene: _Scene) -> _Verdict:
    result = _need_call(scene, "output")
    match = cached_pattern(check.pattern).search(result.output)
    evidence = {"pattern": check.pattern, "match": _match_evidence(match)}
    if match is not None:
        return _Verdict(True, f"output matches /{check.pattern}/ {_span(match)}", evidence)
    return _Verdict(False, f"output does not match /{check.pattern}/", evidence)


def _output_schema(check: OutputSchemaCheck, scene: _Scene) -> _Verdict:
    result = _need_call(scene, "output")
    try:
        document = json.loads(result.output)
    except ValueError as exc:
        cut = " (the output was truncated)" if result.truncated else ""
        return _Verdict(
            False,
            f"output is not JSON{cut}: {exc}",
            {"parsed": False, "error": _clip(str(exc)), "truncated": result.truncated},
        )
    import jsonschema  # only this check needs it (~50 ms to import)

    validator = jsonschema.validators.validator_for(check.json_schema)(check.json_schema)
    errors = sorted(
        validator.iter_errors(document),
        key=lambda e: ([str(p) for p in e.absolute_path], e.message),
    )
    shown = [_schema_error(e) for e in errors[:MAX_SCHEMA_ERRORS]]
    evidence = {"parsed": True, "errors": shown, "error_count": len(errors)}
    if not errors:
        return _Verdict(True, "output is JSON valid against the schema", evidence)
    more = f" (and {len(errors) - len(shown)} more)" if len(errors) > len(shown) else ""
    return _Verdict(False, f"output does not match the schema: {'; '.join(shown)}{more}", evidence)


def _schema_error(error: jsonschema.ValidationError) -> str:
    where = "/".join(str(p) for p in error.absolute_path)
    return f"at {'/' + where if where else 'top level'}: {_clip(error.message)}"


def _final_answer_matches(check: FinalAnswerMatchesCheck, scene: _Scene) -> _Verdict:
    if scene.final_answer is None:
        raise _Stop(
            "missing_evidence",
            f"there is no final answer to match /{check.pattern}/",
            {"pattern": check.pattern},
        )
    match = cached_pattern(check.pattern).search(scene.final_answer)
    evidence = {"pattern": check.pattern, "match": _match_evidence(match)}
    if match is not None:
        return _Verdict(True, f"final answer matches /{check.pattern}/ {_span(match)}", evidence)
    return _Verdict(False, f"final answer does not match /{check.pattern}/", evidence)


# --- python predicates ----------------------------------------------------------------------


@functools.cache
def _load_predicate(ref: str) -> Callable[[dict[str, Any]], Any]:
    """Import ``module:function`` once. Failures are not cached, so a fix is picked up."""
    module_name, _, attr_path = ref.partition(":")
    target: Any = importlib.import_module(module_name)
    for part in attr_path.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise TypeError(f"{ref} is not callable")
    return target


def _python(check: PythonCheck, scene: _Scene) -> _Verdict:
    ref = check.function
    call = scene.call
    payload = {
        "tool": call.tool if call else None,
        "arguments": copy.deepcopy(call.arguments) if call else {},
        "output": call.result.output if call else None,
        "data": copy.deepcopy(call.result.data) if call else {},
        "evidence": copy.deepcopy(call.result.evidence) if call else {},
        "final_answer": scene.final_answer,
    }
    try:
        returned = _load_predicate(ref)(payload)
    except (Exception, SystemExit) as exc:  # the predicate boundary: operator code may fail
        return _Verdict(
            False, f"{ref} raised {type(exc).__name__}: {_clip(str(exc))}", {"function": ref}
        )
    return _predicate_verdict(ref, returned)


def _predicate_verdict(ref: str, returned: Any) -> _Verdict:
    """Accept ``bool``, ``(bool, detail)`` or ``{"passed", "detail"?, "evidence"?}``."""
    passed, detail, extra = _unpack(returned)
    if passed is None:
        return _Verdict(
            False,
            f"{ref} returned {_clip(repr(returned))}; expected a bool, (bool, detail) "
            "or a dict with passed, detail and evidence",
            {"function": ref},
        )
    try:
        json.dumps(extra, allow_nan=False)
    except (TypeError, ValueError) as exc:
        return _Verdict(
            False, f"{ref} returned evidence that is not plain JSON: {exc}", {"function": ref}
        )
    default = f"{ref} {'passed' if passed else 'failed'}"
    return _Verdict(passed, detail or default, {**extra, "function": ref})


def _unpack(returned: Any) -> tuple[bool | None, str | None, dict[str, Any]]:
    if isinstance(returned, bool):
        return returned, None, {}
    if (
        isinstance(returned, tuple)
        and len(returned) == 2
        and isinstance(returned[0], bool)
        and isinstance(returned[1], str)
    ):
        return returned[0], returned[1], {}
    if (
        isinstance(returned, Mapping)
        and set(returned) <= _DICT_KEYS
        and isinstance(returned.get("passed"), bool)
        and isinstance(returned.get("detail"), str | None)
        and isinstance(returned.get("evidence"), Mapping | None)
    ):
        return returned["passed"], returned.get("detail"), dict(returned.get("evidence") or {})
    return None, None, {}


# --- default evidence of builtins -----------------------------------------------------------


def _target(ctx: CallContext, scene: _Scene, *, follow_final: bool) -> tuple[str, _Located]:
    """The path the call reported in its evidence, and where it is on disk now."""
    reported = ctx.result.evidence.get("path")
    if not isinstance(reported, str) or not reported:
        raise _Stop(
            "missing_evidence", f"{ctx.tool} reported no path in its evidence", {"path": None}
        )
    requested = ctx.arguments.get("path")
    text = requested if isinstance(requested, str) and requested else reported
    loc = _locate(text, scene, follow_final=follow_final)
    if loc.shown != reported:
        raise _Stop(
            "verification_failed",
            f"{ctx.tool} reported {reported}, but the call's path now resolves to {loc.shown}",
            {"path": reported, "resolves_to": loc.shown},
        )
    return reported, loc


def _default_write(ctx: CallContext, scene: _Scene) -> _Verdict:
    written = ctx.result.evidence.get("sha256")
    if not isinstance(written, str) or not written:
        raise _Stop(
            "missing_evidence",
            f"{ctx.tool} reported no sha256 for the file it wrote",
            {"path": ctx.result.evidence.get("path")},
        )
    path, loc = _target(ctx, scene, follow_final=True)
    facts = _examine(loc)
    evidence = {**_file_evidence(loc, facts), "expected_sha256": written, "expected_from": "call"}
    if not facts.exists or not facts.regular:
        return _Verdict(False, f"{path} was written but is no longer a file", evidence)
    if facts.sha256 != written.lower():
        return _Verdict(
            False,
            f"{path} changed after the write: sha256 is now {_short(facts.sha256)}, "
            f"the write produced {_short(written)}",
            evidence,
        )
    return _Verdict(True, f"{path} holds what was written ({_describe(facts)})", evidence)


def _default_delete(ctx: CallContext, scene: _Scene) -> _Verdict:
    path, loc = _target(ctx, scene, follow_final=False)
    present = os.path.lexists(loc.path)
    evidence = {"path": path, "exists": present}
    if present:
        return _Verdict(False, f"{path} still exists after the delete", evidence)
    return _Verdict(True, f"{path} no longer exists", evidence)


def _default_reported(key: str, label: str) -> Callable[[CallContext, _Scene], _Verdict]:
    def run(ctx: CallContext, scene: _Scene) -> _Verdict:
        value = _reported(ctx.result, key)
        if value is None:
            raise _Stop("missing_evidence", f"{ctx.tool} reported no {label}", {key: None})
        return _Verdict(True, f"{ctx.tool} reported {label} {value}", {key: value})

    return run


_HANDLERS: dict[type, Callable[[Any, _Scene], _Verdict]] = {
    FileExistsCheck: _file_exists,
    FileSha256Check: _file_sha256,
    FileContainsCheck: _file_contains,
    ExitCodeCheck: _exit_code,
    OutputMatchesCheck: _output_matches,
    OutputSchemaCheck: _output_schema,
    PythonCheck: _python,
    FinalAnswerMatchesCheck: _final_answer_matches,
}

_DEFAULTS: dict[str, tuple[str, Callable[[CallContext, _Scene], _Verdict]]] = {
    "fs.write": ("file_sha256", _default_write),
    "fs.delete": ("file_absent", _default_delete),
    "shell": ("exit_code", _default_reported("exit_code", "exit code")),
    "http.get": ("http_status", _default_reported("status", "HTTP status")),
}
"""Builtin -> (check kind recorded, what its result must show)."""


# --- replay --------------------------------------------------------------------------------

_OBSERVES_WORLD = (FileExistsCheck, FileSha256Check, FileContainsCheck, PythonCheck)
_DEFAULTS_OBSERVING_WORLD = frozenset({"fs.write", "fs.delete"})


def observes_world(check: Check) -> bool:
    """Whether a check looks outside the call's recorded result (files, a Python predicate).
    Replay answers those from the record; the others it can simply run again."""
    return isinstance(check, _OBSERVES_WORLD)


def default_check(uses: str | None) -> tuple[str, bool] | None:
    """The default evidence check of a builtin: (kind recorded, observes the world), or
    None when the tool has none."""
    rule = _DEFAULTS.get(uses or "")
    return None if rule is None else (rule[0], uses in _DEFAULTS_OBSERVING_WORLD)
