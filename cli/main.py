"""The ``govrun`` command: a thin typer app over the runtime.

Heavy imports (pydantic models, openai, textual) happen inside the command that needs them,
so ``govrun --help`` starts fast.
"""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import orjson
import typer

from govrun.cli.commands.approvals import approvals_app
from govrun.cli.commands.approvals import approve as approve_command
from govrun.cli.commands.approvals import reject as reject_command
from govrun.cli.commands.ctl import ctl_app
from govrun.cli.commands.ctl import status as status_command
from govrun.cli.commands.diff import diff as diff_command
from govrun.cli.commands.export import export_app
from govrun.cli.commands.init import init as init_command
from govrun.cli.commands.inspect import inspect as inspect_command
from govrun.cli.commands.keys import keys_app
from govrun.cli.commands.mcp import mcp_app
from govrun.cli.commands.policy import policy_app
from govrun.cli.commands.replay import replay as replay_command
from govrun.cli.commands.replay import resume as resume_command
from govrun.cli.commands.rollback import rollback as rollback_command
from govrun.cli.commands.run import run as run_command
from govrun.cli.commands.temporal import submit as submit_command
from govrun.cli.commands.temporal import worker as worker_command
from govrun.cli.commands.verify import verify as verify_command
from govrun.cli.console import err, handle_errors, out
from govrun.cli.help import HelpGroup
from govrun.runtime import __version__

app = typer.Typer(
    name="govrun",
    cls=HelpGroup,  # help paragraphs as written, values named as in the README
    help="Run LLM agents under a governed control loop, and prove what they did.",
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        out.print(f"govrun {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """govrun: see, constrain, stop and prove what an agent did."""


app.command(name="init")(init_command)
app.command(name="run")(run_command)
app.command(name="replay")(replay_command)
app.command(name="resume")(resume_command)
app.command(name="diff")(diff_command)
app.command(name="rollback")(rollback_command)
app.command(name="inspect")(inspect_command)
app.command(name="verify")(verify_command)
app.add_typer(policy_app, name="policy")
app.add_typer(keys_app, name="keys")
app.add_typer(mcp_app, name="mcp")
app.command(name="status")(status_command)
app.add_typer(ctl_app, name="ctl")
app.add_typer(approvals_app, name="approvals")
app.command(name="approve")(approve_command)
app.command(name="reject")(reject_command)
app.command(name="worker")(worker_command)
app.command(name="submit")(submit_command)
app.add_typer(export_app, name="export")

ManifestPath = Annotated[
    Path, typer.Argument(help="The agent manifest (YAML).", metavar="AGENT.yaml")
]
TracePath = Annotated[Path, typer.Argument(help="A govrun trace (JSONL).", metavar="TRACE.jsonl")]


@app.command()
@handle_errors
def validate(manifest: ManifestPath) -> None:
    """Check a manifest as `run` does before its first step: its fields, its tools (Python
    tools import; MCP servers start and offer the tools named), its policy's predicates and
    a scripted model's script. Exit 0 when valid, 2 with every problem (file:line:col
    field) when not."""
    from govrun.runtime.govern.preflight import check_runnable, servers_started
    from govrun.runtime.manifest.schema import load_manifest
    from govrun.runtime.models import build_model
    from govrun.runtime.run import check_secrets
    from govrun.runtime.tools.mcp.pins import lock_path

    m = load_manifest(manifest)
    check_secrets(m, os.environ)  # the secrets it would have to redact
    with servers_started(m, lock_path(manifest)) as mcp:  # its MCP servers list their tools
        check_runnable(mcp.manifest, mcp_tools=mcp.tools)  # what `run` checks before step 1
        exposed = [t.name for t in mcp.manifest.tools]
    if m.telemetry is not None:  # and where it would export, with what
        from govrun.runtime.views.telemetry.live import destination_of
        from govrun.runtime.views.telemetry.sdk import require_otel

        require_otel(destination_of(m.telemetry, os.environ).protocol)
    configs = m.models or {"model": m.model}
    for config in configs.values():
        if config.provider == "scripted":  # and the model script it reads
            build_model(config, base_dir=m.base_dir, env={})
    tools = ", ".join(exposed) or "no tools"
    models = ", ".join(f"{name} {c.provider}:{c.name or '-'}" for name, c in configs.items())
    out.print(
        f"[green]✓[/] {manifest} is a valid govrun manifest: agent [bold]{m.name}[/], "
        f"{models}, {tools}."
    )


class SchemaKind(StrEnum):
    manifest = "manifest"
    events = "events"


@app.command()
@handle_errors
def schema(
    kind: Annotated[
        SchemaKind, typer.Argument(help="Which schema to print.")
    ] = SchemaKind.manifest,
) -> None:
    """Print a JSON Schema to stdout: the manifest (for editors) or a trace event."""
    if kind is SchemaKind.manifest:
        from govrun.runtime.manifest.schema import manifest_json_schema

        doc = manifest_json_schema()
    else:
        from govrun.runtime.trace.events import events_json_schema

        doc = events_json_schema()
    sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode())
    sys.stdout.write("\n")


@app.command()
@handle_errors
def show(trace: TracePath) -> None:
    """One-screen summary of a run: outcome, failure class, steps, calls, tokens, cost."""
    from govrun.cli.render.integrity import check_integrity
    from govrun.cli.render.show import render_summary
    from govrun.runtime.trace.reader import read_trace
    from govrun.runtime.views.summary import summarize

    report = check_integrity(trace, doing="show", refuse_altered=False)
    events, torn = read_trace(trace)
    render_summary(summarize(events, torn), trace, report)


def main() -> None:  # pragma: no cover - console-script entry
    try:
        app()
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]")
        raise SystemExit(130) from None
