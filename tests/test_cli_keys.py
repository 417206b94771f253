"""`govrun keys init` and `govrun keys show` through the real typer app.

Every invocation gets ``GOVRUN_HOME`` pointing at a temporary folder, so the real home is
never read or written.
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from govrun.cli.main import app
from govrun.runtime.trace.signing import KEY_FILE, Signer, load_trusted_keys


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "govrun-home"


@pytest.fixture
def keys(home: Path):
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, ["keys", *args], env={"GOVRUN_HOME": str(home)})

    return invoke


def flat(output: str) -> str:
    """Output with every run of whitespace made one space (undoes rich's wrapping)."""
    return " ".join(output.split())


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def trusted_line(output: str) -> str:
    lines = output.splitlines()
    return lines[lines.index(next(x for x in lines if x.startswith("add this line"))) + 1]


def test_init_creates_a_private_key_and_prints_what_to_share(keys, home: Path) -> None:
    result = keys("init")

    assert result.exit_code == 0, result.output
    key = home / "keys" / KEY_FILE
    assert mode(key) == 0o600
    assert mode(key.parent) == 0o700
    signer = Signer.load(key)
    pub = key.with_name(KEY_FILE + ".pub").read_text()
    assert pub == f"{signer.public_key} {signer.fingerprint}\n"
    assert f"fingerprint      {signer.fingerprint}" in result.output
    assert str(key) in result.output
    assert "add this line to a trusted-keys file" in result.output
    line = trusted_line(result.output)
    assert line.startswith(f"{signer.public_key} {signer.fingerprint} ")  # then who it is
    assert "`govrun run` now signs approvals and trace seals with this key" in flat(result.output)
    shared = home / "trusted-keys"
    shared.write_text(line + "\n")
    assert signer.fingerprint in load_trusted_keys(shared)


def test_init_twice_refuses_unless_forced(keys, home: Path) -> None:
    assert keys("init").exit_code == 0
    key = home / "keys" / KEY_FILE
    first = Signer.load(key).fingerprint

    again = keys("init")

    assert again.exit_code == 2
    assert "already exists" in again.output and "--force" in flat(again.output)
    assert "Traceback" not in again.output
    assert Signer.load(key).fingerprint == first

    forced = keys("init", "--force")

    assert forced.exit_code == 0, forced.output
    assert Signer.load(key).fingerprint != first
    assert mode(key) == 0o600


def test_init_at_a_path_in_a_new_folder(keys, tmp_path: Path, home: Path) -> None:
    key = tmp_path / "elsewhere" / "me.ed25519"

    result = keys("init", "--path", str(key))

    assert result.exit_code == 0, result.output
    assert (mode(key), mode(key.parent)) == (0o600, 0o700)
    assert key.with_name("me.ed25519.pub").is_file()
    assert not (home / "keys").exists()
    assert "not this one" in flat(result.output)  # `govrun run` does not pick this key up


def test_init_refuses_to_make_a_shared_folder_private(keys, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)

    result = keys("init", "--path", str(shared / "me.ed25519"))

    assert result.exit_code == 2
    assert "is shared (mode 755)" in flat(result.output)
    assert mode(shared) == 0o755
    assert list(shared.iterdir()) == []


def test_show_prints_the_key_and_the_line_to_share(keys, home: Path) -> None:
    keys("init")
    signer = Signer.load(home / "keys" / KEY_FILE)

    result = keys("show")

    assert result.exit_code == 0, result.output
    assert signer.fingerprint in result.output
    assert signer.public_key in result.output
    assert str(home / "keys" / KEY_FILE) in result.output
    assert trusted_line(result.output).startswith(f"{signer.public_key} {signer.fingerprint}")


def test_show_warns_about_a_key_others_can_read(keys, home: Path) -> None:
    keys("init")
    (home / "keys" / KEY_FILE).chmod(0o644)

    result = keys("show")

    assert result.exit_code == 0
    assert "readable by others (mode 644)" in flat(result.output)
    assert "chmod 600" in flat(result.output)


@pytest.mark.parametrize("where", ["default", "path"])
def test_show_without_a_key_says_how_to_make_one(keys, tmp_path: Path, where: str) -> None:
    args = ["--path", str(tmp_path / "none.ed25519")] if where == "path" else []

    result = keys("show", *args)

    assert result.exit_code == 2
    assert "no signing key at" in flat(result.output)
    assert f"run `{' '.join(['govrun', 'keys', 'init', *args])}`" in flat(result.output)
    assert "Traceback" not in result.output


def test_keys_is_listed_in_help(keys) -> None:
    result = CliRunner().invoke(app, ["--help"])

    assert result.exit_code == 0
    assert "keys" in result.output
