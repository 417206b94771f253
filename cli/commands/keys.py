"""`govrun keys`: the Ed25519 key that signs your approvals and your traces' seals.

`govrun run` signs with this key when it exists (else with a key made for that run only,
which proves a trace unaltered but not who approved). Share the trusted-keys line so that
others can pin your key with `govrun verify --trusted-keys`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from govrun.cli.console import err, handle_errors, out

if TYPE_CHECKING:
    from govrun.runtime.trace.signing import Signer

keys_app = typer.Typer(
    help="Create and show the key that signs your approvals and trace seals.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)

KeyPath = Annotated[
    Path | None,
    typer.Option(
        "--path",
        metavar="FILE",
        help="Private key file (default: $GOVRUN_HOME/keys/approver.ed25519, "
        "else ~/.config/govrun/keys/approver.ed25519).",
        show_default=False,
    ),
]


@keys_app.command()
@handle_errors
def init(
    path: KeyPath = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Replace an existing key (approvals it signed will no longer match your key).",
        ),
    ] = False,
) -> None:
    """Create your signing key: private key 0600 in a 0700 folder, public key beside it."""
    from govrun.runtime.errors import GovrunError
    from govrun.runtime.trace.signing import default_key_path, init_key

    target = path or default_key_path()
    if path is not None:
        _refuse_shared_folder(target)
    try:
        signer = init_key(target, force=force)
    except OSError as exc:
        raise GovrunError(
            f"cannot create signing key {target}: {exc.strerror or exc}",
            hint="Choose another place with --path.",
        ) from None
    out.print(f"[green]✓[/] created signing key {escape(str(target))}")
    _describe(signer, target)
    default = default_key_path()
    if target.absolute() == default.absolute():
        out.print("[dim]`govrun run` now signs approvals and trace seals with this key.[/]")
    else:
        out.print(
            f"[dim]`govrun run` signs with the key at {escape(str(default))}, not this one.[/]",
            soft_wrap=True,
        )
    out.print("[dim]Keep the private key file to yourself.[/]")


@keys_app.command()
@handle_errors
def show(path: KeyPath = None) -> None:
    """Show your signing key: fingerprint, public key, file and trusted-keys line."""
    from govrun.runtime.errors import GovrunError
    from govrun.runtime.trace.signing import Signer, default_key_path

    target = path or default_key_path()
    if not target.exists():  # anything else there is refused by Signer.load, saying what it is
        command = "govrun keys init" + (f" --path {target}" if path is not None else "")
        raise GovrunError(f"no signing key at {target}.", hint=f"Create one: run `{command}`.")
    signer = Signer.load(target)
    _describe(signer, target)
    mode = target.stat().st_mode & 0o777
    if mode & 0o077:
        err.print(
            f"[yellow]warning:[/] {escape(str(target))} is readable by others (mode {mode:o}); "
            f"`govrun run` refuses it. Fix it with: chmod 600 {escape(str(target))}",
            soft_wrap=True,
        )


def _describe(signer: Signer, path: Path) -> None:
    from govrun.runtime.govern.approvers import local_identity
    from govrun.runtime.trace.signing import trusted_key_line

    out.print(f"[bold]fingerprint[/]      {signer.fingerprint}", soft_wrap=True)
    out.print(f"[bold]public key[/]       {signer.public_key}", soft_wrap=True)
    out.print(f"[bold]private key file[/] {escape(str(path))}", soft_wrap=True)
    out.print(f"[bold]public key file[/]  {escape(str(path))}.pub", soft_wrap=True)
    out.print("add this line to a trusted-keys file (verify --trusted-keys):")
    out.print(escape(trusted_key_line(signer, local_identity())), soft_wrap=True)


def _refuse_shared_folder(path: Path) -> None:
    """A private key belongs in a folder only its owner can write: in a shared one (a home
    readable by others, /tmp) someone else could plant or swap files next to it."""
    from govrun.runtime.errors import GovrunError

    folder = path.parent
    if not folder.is_dir():
        return  # init creates it
    mode = folder.stat().st_mode & 0o777
    if mode & 0o077:
        raise GovrunError(
            f"{folder} is shared (mode {mode:o}), but a key's folder must be private (0700).",
            hint=f"Put the key in a folder of its own, e.g. --path {folder / 'keys' / path.name}",
        )
