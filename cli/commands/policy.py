"""``govrun policy explain``: see how a manifest's policy decides one call, without a run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.markup import escape
from rich.table import Table

from govrun.cli.console import handle_errors, out
from govrun.runtime.errors import GovrunError

policy_app = typer.Typer(
    help="Test a policy without running an agent.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)

EFFECT_STYLE = {"allow": "green", "ask": "yellow", "deny": "red"}


@policy_app.command()
@handle_errors
def explain(
    manifest: Annotated[
        Path, typer.Argument(help="The agent manifest (YAML).", metavar="AGENT.yaml")
    ],
    tool: Annotated[
        str, typer.Argument(help="Tool name, as the model would call it.", metavar="TOOL")
    ],
    arguments: Annotated[
        str,
        typer.Argument(help="The call's arguments as a JSON object.", metavar="JSON-ARGS"),
    ] = "{}",
) -> None:
    """Show how the policy decides TOOL with JSON-ARGS, exactly as a run would: the call as
    its tool would execute it (resolved path, argv, typed values), the deciding rule and
    every rule's outcome on that call. Exit 0 whatever the decision; 2 on a bad manifest,
    tool or arguments."""
    from govrun.runtime.govern.preflight import servers_started
    from govrun.runtime.manifest.schema import load_manifest
    from govrun.runtime.tools.mcp.pins import lock_path

    args = _parse_arguments(arguments)
    with servers_started(load_manifest(manifest), lock_path(manifest)) as mcp:
        _explain(mcp.manifest, tool, args, mcp.tools)


def _explain(m: Any, tool: str, args: dict[str, Any], mcp_tools: Any) -> None:
    from govrun.runtime.govern.decide import SCOPE_RULE, decide_call
    from govrun.runtime.govern.policy import PolicyEngine
    from govrun.runtime.govern.preflight import check_runnable
    from govrun.runtime.govern.toolbox import PreparedCall
    from govrun.runtime.manifest.problems import did_you_mean
    from govrun.runtime.ports import ToolCallRequest

    spec = m.tool(tool)
    if spec is None:
        names = [t.name for t in m.tools]
        suggestion = did_you_mean(tool, names)
        raise GovrunError(
            f"unknown tool {tool!r}; declared tools: {', '.join(names) or 'none'}",
            hint=f"Did you mean {suggestion!r}?" if suggestion else None,
        )
    toolbox = check_runnable(m, mcp_tools=mcp_tools)
    engine = PolicyEngine(m)
    verdict = decide_call(
        toolbox,
        engine,
        1,
        ToolCallRequest(id="explain", name=tool, arguments=orjson.dumps(args).decode()),
    )
    decided = verdict.call.arguments if verdict.call.arguments is not None else args
    traces = engine.explain(tool, decided)

    kind = f" ({spec.uses})" if spec.uses else f" (mcp {spec.mcp})" if spec.mcp else " (python)"
    risk = verdict.risk or engine.decide(tool, decided).risk
    out.print(f"{_effect(verdict.effect, upper=True)}  {escape(tool)}{kind}, risk {risk}")
    if isinstance(verdict.call, PreparedCall) and verdict.call.canonical is not None:
        canonical = verdict.call.canonical.arguments
        if _json(canonical) != _json(args):
            out.print(f"[dim]as sent[/]     {escape(_json(args))}", soft_wrap=True)
        out.print(f"[dim]as it runs[/]  {escape(_json(canonical))}", soft_wrap=True)
    if verdict.rule == SCOPE_RULE or verdict.failure_class in ("invalid_arguments", "unknown_tool"):
        why = "outside the tool's scope" if verdict.rule == SCOPE_RULE else "invalid arguments"
        out.print(
            f"[red]denied before the rules ({why}):[/] {escape(verdict.reason)}", soft_wrap=True
        )
        out.print(
            "[dim]The rules below are not consulted for this call; this is what they "
            "would say inside the scope.[/]"
        )
    else:
        out.print(escape(verdict.reason), soft_wrap=True)
    out.print(f"[dim]policy sha256 {engine.policy_hash[:16]}…[/]")
    if not traces:
        out.print(f"no rules; default is {_effect(m.policy.default)}")
        return
    table = Table(title=None, show_lines=False)
    table.add_column("#", justify="right", style="dim")
    table.add_column("rule")
    table.add_column("effect")
    table.add_column("match", justify="center")
    table.add_column("why", overflow="fold")
    for index, trace in enumerate(traces, start=1):
        mark = "[green]✓[/]" if trace.matched else "[red]✗[/]"
        rule = f"[bold]{escape(trace.rule)}[/] ←" if trace.decided else escape(trace.rule)
        table.add_row(str(index), rule, _effect(trace.effect), mark, escape(trace.why))
    out.print(table)
    if verdict.rule is None and verdict.failure_class is None:
        out.print(f"no rule matched; default is {_effect(m.policy.default)}")


def _parse_arguments(text: str) -> dict[str, Any]:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise GovrunError(
            f"arguments must be a JSON object: {exc}",
            hint='Quote them for the shell, e.g. \'{"path": "notes.txt"}\'.',
        ) from None
    if not isinstance(value, dict):
        raise GovrunError(
            f"arguments must be a JSON object: got {_json_kind(value)} {text.strip()[:60]}",
            hint='Wrap them in an object, e.g. \'{"path": "notes.txt"}\'.',
        )
    return value


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _effect(effect: str, *, upper: bool = False) -> str:
    label = effect.upper() if upper else effect
    return f"[bold {EFFECT_STYLE.get(effect, 'white')}]{label}[/]"


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    return "null" if value is None else "a number"
