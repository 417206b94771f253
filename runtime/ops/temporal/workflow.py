"""The workflow of one governed run. Deterministic: it only schedules segments, waits for
signals and timers, and keeps the state ``govrun status`` / ``approvals`` query. Everything
that touches the world happens in the segment activity (:mod:`.segment`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

WORKFLOW = "GovrunRun"
SEGMENT = "govrun_segment"


@workflow.defn(name=WORKFLOW)
class GovrunRun:
    """Runs segments until the run ends. A segment that stops at a question (an approval,
    a pause) leaves the run waiting here: on a decision or an answer sent as a signal, or on
    the durable timer of the approval's timeout, the next segment resumes from its trace."""

    def __init__(self) -> None:
        self._state: dict[str, Any] = {"status": "starting", "step": 0, "handled": []}
        self._decisions: list[dict[str, Any]] = []
        self._control: list[dict[str, Any]] = []

    @workflow.run
    async def run(self, params: dict[str, Any]) -> dict[str, Any]:
        self._state.update(run_id=params["run_id"], folder=params["folder"])
        segment, source = 1, None
        answer: dict[str, Any] = {}
        while True:
            self._state.update(status="running", segment=segment, pending=None, paused=None)
            out: dict[str, Any] = await workflow.execute_activity(
                SEGMENT,
                {**params, "segment": segment, "source": source, **answer},
                start_to_close_timeout=timedelta(seconds=params["segment_timeout_s"]),
                heartbeat_timeout=timedelta(seconds=params["heartbeat_s"]),
                retry_policy=RetryPolicy(
                    maximum_attempts=params["max_attempts"],
                    non_retryable_error_types=["GovrunConfig"],
                ),
            )
            self._state.update(trace=out["trace"], step=out.get("step", 0))
            self._state["handled"] += out.get("handled", [])
            if out["status"] == "finished":
                self._state.update(status="finished", result=out["result"])
                return out
            source, segment = out["trace"], segment + 1
            answer = await self._wait(out)

    async def _wait(self, out: dict[str, Any]) -> dict[str, Any]:
        """What the next segment is given: decisions and control requests that came in,
        or that the approval timed out."""
        waiting = out["waiting"]
        if waiting["kind"] == "approval":
            self._state.update(status="waiting", pending=waiting)
            timeout = waiting.get("timeout_s")
            try:
                await workflow.wait_condition(
                    lambda: bool(self._decisions) or self._stopping(),
                    timeout=timedelta(seconds=timeout) if timeout else None,
                )
            except TimeoutError:
                return {"timed_out": True, "decisions": [], "control": self._take_control()}
            decisions, self._decisions = self._decisions, []
            return {"decisions": decisions, "control": self._take_control()}
        self._state.update(status="paused", paused=waiting)
        await workflow.wait_condition(
            lambda: any(c.get("action") in ("resume", "stop") for c in self._control)
        )
        return {"decisions": [], "control": self._take_control()}

    def _stopping(self) -> bool:
        return any(c.get("action") == "stop" for c in self._control)

    def _take_control(self) -> list[dict[str, Any]]:
        taken, self._control = self._control, []
        return taken

    @workflow.signal
    def decide(self, sent: dict[str, Any]) -> None:
        """A signed decision from `govrun approve` / `reject` (checked by the next segment)."""
        self._decisions.append(sent)

    @workflow.signal
    def control(self, request: dict[str, Any]) -> None:
        """`govrun ctl pause|resume|stop` while the run waits (a running segment reads the
        control folder next to its trace, as a local run does)."""
        self._control.append(request)

    @workflow.query
    def state(self) -> dict[str, Any]:
        return dict(self._state)
