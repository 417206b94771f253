"""The OpenAI Agents SDK ``Runner`` on the shared workload, for bench_peers (not a test).

Imported only inside the benchmark's Agents SDK child process: ``openai-agents`` comes from
benchmarks/requirements-peers.txt, not govrun's dependencies.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from agents import Agent, RunConfig, Runner, function_tool, set_tracing_disabled
from agents.items import ModelResponse, TResponseStreamEvent
from agents.models.interface import Model
from agents.tracing import Span, Trace, TracingProcessor, set_trace_processors
from agents.usage import Usage
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
)

from benchmarks.workload import add


class ScriptedModel(Model):
    """A custom in-process ``Model`` with the workload's script: at call i < n it asks for
    ``add(a=i, b=1)`` with id ``call_i``; at call n it answers "done". It counts its calls,
    it does not read the conversation."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.calls = 0

    async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
        i = self.calls
        self.calls += 1
        usage = Usage(requests=1, input_tokens=40, output_tokens=8, total_tokens=48)
        item: ResponseFunctionToolCall | ResponseOutputMessage
        if i < self.n:
            item = ResponseFunctionToolCall(
                type="function_call",
                id=f"fc_{i}",
                call_id=f"call_{i}",
                name="add",
                arguments=json.dumps({"a": i, "b": 1}),
                status="completed",
            )
        else:
            text = ResponseOutputText(type="output_text", text="done", annotations=[])
            item = ResponseOutputMessage(
                id=f"msg_{i}", type="message", role="assistant", status="completed", content=[text]
            )
        return ModelResponse(output=[item], usage=usage, response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[TResponseStreamEvent]:
        raise NotImplementedError("the benchmark does not stream")


class InMemoryProcessor(TracingProcessor):
    """Keeps every finished trace and span, exported, in lists: tracing on, nothing sent."""

    def __init__(self) -> None:
        self.traces: list[dict[str, Any] | None] = []
        self.spans: list[dict[str, Any] | None] = []

    def on_trace_start(self, trace: Trace) -> None:
        pass

    def on_trace_end(self, trace: Trace) -> None:
        self.traces.append(trace.export())

    def on_span_start(self, span: Span[Any]) -> None:
        pass

    def on_span_end(self, span: Span[Any]) -> None:
        self.spans.append(span.export())

    def shutdown(self) -> None:
        pass

    def force_flush(self) -> None:
        pass


def prepare(n: int, *, tracing: bool, extras: dict[str, Any]) -> Callable[[], float]:
    """One timed run per call: a fresh agent and model are built untimed, then
    ``Runner.run_sync`` is timed. Checks the run made n tool calls and answered "done"."""
    set_tracing_disabled(not tracing)
    tool = function_tool(add)

    def run() -> float:
        processor = InMemoryProcessor()
        if tracing:
            set_trace_processors([processor])  # replaces the default exporter: nothing sent
        agent = Agent(
            name="bench", instructions="You add numbers.", model=ScriptedModel(n), tools=[tool]
        )
        start = time.perf_counter()
        result = Runner.run_sync(
            agent,
            "add numbers",
            max_turns=n + 10,
            run_config=RunConfig(tracing_disabled=not tracing),
        )
        elapsed = time.perf_counter() - start
        outputs = [i.output for i in result.new_items if i.type == "tool_call_output_item"]
        if result.final_output != "done" or outputs != [i + 1 for i in range(n)]:
            raise SystemExit(f"Agents SDK run did not do the workload: {len(outputs)} results")
        if tracing:
            extras["spans_per_run"] = len(processor.spans)
            if not processor.spans:
                raise SystemExit("tracing was on but the in-memory processor saw no spans")
        return elapsed

    return run
