"""LangGraph's prebuilt ReAct agent on the shared workload, for bench_peers (not a test).

Imported only inside the benchmark's LangGraph child process: ``langgraph`` and
``langchain-core`` come from benchmarks/requirements-peers.txt, not govrun's dependencies.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Any

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.prebuilt import create_react_agent
from pydantic import PrivateAttr

from benchmarks.workload import add

USAGE = {"input_tokens": 40, "output_tokens": 8, "total_tokens": 48}


class ScriptedChatModel(BaseChatModel):
    """A fake chat model with the workload's script: at call i < n it asks for
    ``add(a=i, b=1)`` with id ``call_i``; at call n it answers "done". Instant and
    in-process, like govrun's ScriptedModel: it counts its calls, it does not read the
    conversation."""

    n: int
    _calls: int = PrivateAttr(default=0)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Any, **kwargs: Any) -> ScriptedChatModel:
        return self

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        i = self._calls
        self._calls += 1
        if i < self.n:
            call = {"name": "add", "args": {"a": i, "b": 1}, "id": f"call_{i}", "type": "tool_call"}
            message = AIMessage(content="", tool_calls=[call], usage_metadata=USAGE)
        else:
            message = AIMessage(content="done", usage_metadata=USAGE)
        return ChatResult(generations=[ChatGeneration(message=message)])


def prepare(n: int, *, checkpointer: bool) -> Callable[[], float]:
    """One timed run per call: a fresh agent (and checkpointer) is built untimed, then
    ``invoke`` is timed. Checks the run made n tool calls with the right results."""
    config: dict[str, Any] = {"recursion_limit": 2 * n + 20}
    runs = 0

    def run() -> float:
        nonlocal runs
        runs += 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # create_react_agent is deprecated since 1.0
            agent = create_react_agent(
                ScriptedChatModel(n=n),
                [add],
                prompt="You add numbers.",
                checkpointer=InMemorySaver() if checkpointer else None,
            )
        if checkpointer:
            config["configurable"] = {"thread_id": f"bench-{runs}"}
        start = time.perf_counter()
        state = agent.invoke({"messages": [{"role": "user", "content": "add numbers"}]}, config)
        elapsed = time.perf_counter() - start
        check(state["messages"], n)
        return elapsed

    return run


def check(messages: list[BaseMessage], n: int) -> None:
    results = [m.content for m in messages if isinstance(m, ToolMessage)]
    if results != [str(i + 1) for i in range(n)] or messages[-1].content != "done":
        raise SystemExit(f"LangGraph run did not do the workload: {len(results)} tool results")
