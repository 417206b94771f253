"""Python callables as tools, loaded from ``tests/support/pytools.py``."""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

import pytest

from govrun.runtime.tools import (
    ScopeViolation,
    Tool,
    ToolConfigError,
    ToolResult,
    load_python_tool,
    parse_arguments,
)

MOD = "tests.support.pytools"


def load(func: str, **kw: Any) -> Tool:
    kw.setdefault("timeout_s", 5)
    kw.setdefault("max_output_bytes", 65536)
    return load_python_tool(f"{MOD}:{func}", name=func, **kw)


def call(tool: Tool, args: dict[str, Any] | str) -> ToolResult:
    return tool.run(parse_arguments(tool, args))


def test_schema_from_signature_and_description_from_docstring() -> None:
    tool = load("add")
    assert tool.description == "Add two integers."
    schema = tool.json_schema()
    assert schema["additionalProperties"] is False and schema["required"] == ["a"]
    assert schema["properties"]["a"]["type"] == "integer"
    assert schema["properties"]["b"]["default"] == 2


def test_explicit_description_wins() -> None:
    assert load("add", description="Sum.").description == "Sum."
    assert load("positional").description == f"Calls {MOD}:positional."


def test_call_returns_json_and_structured_result() -> None:
    r = call(load("add"), {"a": 1})
    assert r.ok and r.output == "3" and r.data == {"result": 3}
    assert r.evidence["callable"] == f"{MOD}:add" and len(r.evidence["result_sha256"]) == 64
    assert call(load("add"), '{"a": 1, "b": 5}').output == "6"


def test_string_results_are_shown_as_is() -> None:
    assert call(load("greet"), {"name": "ada"}).output == "hello ada"


def test_untyped_parameters_accept_anything() -> None:
    tool = load("untyped")
    assert "type" not in tool.json_schema()["properties"]["value"]
    assert json.loads(call(tool, {"value": {"k": [1]}}).output) == [{"k": [1]}, {"k": [1]}]


def test_pydantic_parameters_and_results() -> None:
    tool = load("move")
    assert "$defs" in tool.json_schema()
    r = call(tool, {"p": {"x": 1, "y": 2}, "dx": 3})
    assert json.loads(r.output) == {"x": 4, "y": 2}
    assert r.data == {"result": {"x": 4, "y": 2}}


def test_parameters_named_like_basemodel_attributes() -> None:
    tool = load("shadowing")
    assert set(tool.json_schema()["properties"]) == {"json", "copy"}
    assert json.loads(call(tool, {"json": "j"}).output) == {"json": "j", "copy": 0}


def test_positional_only_parameters() -> None:
    assert call(load("positional"), {"a": 1, "b": 2}).output == "[1,2]"


@pytest.mark.parametrize(
    "args",
    [{"a": 1, "c": 3}, {"a": "one"}, {}, {"arg0": 1}, '{"a": 1,', "[1, 2]"],
)
def test_hallucinated_or_mistyped_arguments_are_invalid(args: Any) -> None:
    with pytest.raises(ScopeViolation) as exc:
        parse_arguments(load("add"), args)
    assert exc.value.failure_class == "invalid_arguments"


def test_exception_becomes_tool_error_without_traceback() -> None:
    r = call(load("fails"), {"message": "x"})
    assert not r.ok and r.failure_class == "tool_error"
    assert r.error == "ValueError: bad input: x"
    assert "Traceback" not in r.output and "pytools.py" not in r.output


def test_system_exit_does_not_escape() -> None:
    r = call(load("exits"), {})
    assert r.failure_class == "tool_error" and "SystemExit" in r.error


def test_sync_timeout() -> None:
    start = time.monotonic()
    r = call(load("slow", timeout_s=0.3), {"seconds": 5})
    assert r.failure_class == "timeout" and time.monotonic() - start < 2


def test_async_function_runs_and_times_out() -> None:
    assert call(load("aslow"), {"seconds": 0.01}).output == "async finished"
    r = call(load("aslow", timeout_s=0.3), {"seconds": 5})
    assert r.failure_class == "timeout"


def test_unserializable_result_falls_back_to_str() -> None:
    r = call(load("opaque"), {})
    assert r.ok and "object object at" in r.output


def test_long_result_is_truncated() -> None:
    r = call(load("long_text", max_output_bytes=100), {"n": 1000})
    assert r.truncated and r.output.endswith("[truncated 900 bytes]") and r.data == {}


def test_tool_satisfies_protocol() -> None:
    assert isinstance(load("add"), Tool)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (f"{MOD}:star_args", "*values is not supported"),
        (f"{MOD}:star_kwargs", "**options is not supported"),
        (f"{MOD}:ad", "Did you mean 'add'?"),
        (f"{MOD}:NOT_CALLABLE", "is not a function"),
        (f"{MOD}:Point", "is not a function"),
        ("tests.support.no_such_module:f", "cannot import module"),
        (MOD, "must look like 'package.module:function'"),
        (f"{MOD}:add()", "must look like"),
    ],
)
def test_load_errors_are_clear(spec: str, message: str) -> None:
    with pytest.raises(ToolConfigError) as exc:
        load_python_tool(spec, name="t", timeout_s=1, max_output_bytes=100)
    assert message in str(exc.value)


# --- what an inline call prints ---------------------------------------------------------


def test_what_an_inline_call_prints_is_evidence_not_output(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """As under isolation: process (tests/test_tools_pyproc.py), bounded: 10 MB printed is
    counted, the first max_output_bytes kept."""
    streams = sys.stdout, sys.stderr
    tool = load("chatty", max_output_bytes=1000)
    result = call(tool, {"stdout_bytes": 10_000_000, "stderr_text": "a warning"})
    seen = capfd.readouterr()
    assert "xxxx" not in seen.out + seen.err and "a warning" not in seen.err
    assert result.ok and result.output == "printed" and result.data == {"result": "printed"}
    assert result.evidence["printed"] == {
        "stdout": "x" * 1000 + "\n[truncated 9999000 bytes]",
        "stderr": "a warning\n",
        "bytes": 10_000_000 + len("a warning\n"),
    }
    assert (sys.stdout, sys.stderr) == streams  # put back after the call
    assert "printed" not in call(load("add"), {"a": 1}).evidence  # nothing printed: no key


def test_prints_from_the_tools_own_threads_are_captured(
    capfd: pytest.CaptureFixture[str],
) -> None:
    result = call(load("chatty_threads"), {"threads": 4, "lines": 500})
    assert "thread" not in capfd.readouterr().out
    printed = result.evidence["printed"]
    lines = printed["stdout"].splitlines()
    assert len(lines) == 2000 and printed["bytes"] == sum(len(line) + 1 for line in lines)
    assert {f"thread {n} line 499" for n in range(4)} <= set(lines)  # no write lost or torn


def test_a_failed_call_keeps_what_it_printed(capfd: pytest.CaptureFixture[str]) -> None:
    result = call(load("chatty_then_fails"), {"text": "about to fail"})
    assert capfd.readouterr().out == ""
    assert result.failure_class == "tool_error" and result.error == "ValueError: it went wrong"
    assert result.evidence["printed"] == {"stdout": "about to fail\n", "stderr": "", "bytes": 14}


def test_bytes_written_to_the_buffer_are_captured(capfd: pytest.CaptureFixture[str]) -> None:
    result = call(load("writes_bytes"), {"data": "raw"})
    assert capfd.readouterr().out == "" and result.ok
    assert result.evidence["printed"]["stdout"] == "raw\ufffd\n"


def test_calls_in_several_threads_keep_their_own_prints_and_the_streams() -> None:
    """Calls overlapping in time, from threads of their own (an embedder's): each call's
    evidence holds its own lines, and the streams are the original ones afterwards, however
    the calls ended in relation to each other."""
    streams = sys.stdout, sys.stderr
    tool = load("chatty_then_fails")
    slow = load("slow_talker")
    results: dict[int, ToolResult] = {}

    def worker(n: int) -> None:
        results[n] = call(slow, {"name": f"call {n}", "lines": 50, "pause_s": 0.001})

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    call(tool, {"text": "in between"})
    for thread in threads:
        thread.join()
    assert (sys.stdout, sys.stderr) == streams
    for n, result in results.items():
        lines = result.evidence["printed"]["stdout"].splitlines()
        assert lines == [f"call {n} {i}" for i in range(50)], lines[:3]
