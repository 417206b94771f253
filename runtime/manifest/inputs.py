"""The files a user hands govrun — manifests, model scripts, approval rules, signing and
trusted keys, task files (``-i @FILE``) and traces — opened one hardened way.

Every refusal is one sentence, ``"{path}: {problem}"``, and a hint, worded the same by every
command that reads that kind of file: a missing file, a folder, anything but a regular file
(opened without waiting and refused before a byte is read: a FIFO would block until someone
writes to it, /dev/zero never ends), an empty file, a file over the size limit (checked on the
open file and again by a read that stops one byte past the limit, since a file can grow), a
NUL byte (binary data), or bytes that are not UTF-8, with the byte offset and line. A UTF-8
byte-order mark is dropped and CRLF line ends read as LF, as every editor may save them.
"""

from __future__ import annotations

import codecs
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from govrun.runtime.errors import GovrunError, InputError

MAX_TEXT_BYTES = 1 << 20
"""The most govrun reads of a text file: 1 MiB. The quickstart manifest is 2 KB and a
thousand-turn model script 120 KB, and 1 MiB of YAML parses in well under a second."""

_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
"""O_NONBLOCK so that opening a FIFO does not wait for a writer (reads from a regular file
ignore it); O_NOCTTY so that a terminal device never becomes the controlling one."""

_SPECIAL = {
    stat.S_IFIFO: "a named pipe (FIFO)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}
_WIDE_BOMS = (  # UTF-32 first: its little-endian mark begins with UTF-16's
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)


@dataclass(frozen=True)
class InputKind:
    """One kind of file govrun reads: how its messages name it, and what it should hold."""

    name: str
    """As the messages say it: ``no such {name}``, ``the {name} is empty``."""
    hint: str | None
    """What such a file holds: shown when it is missing or empty."""
    limit: int = MAX_TEXT_BYTES


MANIFEST = InputKind(
    "manifest",
    "A manifest is YAML with at least `name` and `model`; fixtures/agents/quickstart.yaml is "
    "one to start from.",
)
SCRIPT = InputKind(
    "model script",
    "model.script names a YAML list of turns, relative to the manifest's folder.",
)
RULES = InputKind(
    "approval rules file",
    "An approval rules file is YAML holding `rules:`, a list of {id, tools, when, decision, "
    "reason}.",
)
SIGNING_KEY = InputKind(
    "signing key",
    "A signing key is an unencrypted Ed25519 PEM private key; create one with `govrun keys init`.",
    limit=64 << 10,
)
TRUSTED_KEYS = InputKind(
    "trusted keys file",
    "A trusted keys file holds one public key per line, as `govrun keys show` prints it.",
)
TLS_FILE = InputKind(
    "TLS file",
    "GOVRUN_TEMPORAL_TLS_*_PATH name PEM files: a CA certificate, a client certificate, its "
    "private key.",
    limit=256 << 10,
)
TASK = InputKind("task file", "-i @FILE reads the agent's task from FILE, as UTF-8 text.")
TRACE = InputKind("trace", None)  # trace errors are one line; a trace names itself


def read_text(path: str | Path, kind: InputKind) -> str:
    """The text of the user's file ``path``, or :class:`InputError` saying why not."""
    with open_file(path, kind) as f:
        size = os.fstat(f.fileno()).st_size
        if size > kind.limit:
            raise _too_large(path, kind, f"{_size(size)}, over the {_size(kind.limit)} limit")
        data = f.read(kind.limit + 1)
    if len(data) > kind.limit:
        raise _too_large(path, kind, f"it grew past the {_size(kind.limit)} limit as it was read")
    return decode(data, path, kind)


def decode(data: bytes, path: str | Path, kind: InputKind) -> str:
    """``data`` as text: UTF-8, without a byte-order mark, with LF line ends."""
    bom = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    if not data[bom:]:
        raise InputError(f"{path}: the {kind.name} is empty", hint=kind.hint)
    for mark, encoding in _WIDE_BOMS:
        if data.startswith(mark):
            raise InputError(
                f"{path}: the {kind.name} is {encoding} text, not UTF-8",
                hint="Save it as UTF-8.",
            )
    nul = data.find(b"\0")
    if nul >= 0:
        raise InputError(
            f"{path}: the {kind.name} is binary, not text (a NUL byte at {_at(data, nul)})",
            hint=f"Is this the right file? govrun reads a {kind.name} as UTF-8 text.",
        )
    try:
        text = data[bom:].decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = bom + exc.start
        raise InputError(
            f"{path}: the {kind.name} is not UTF-8 text "
            f"(byte 0x{data[offset]:02x} at {_at(data, offset)})",
            hint="Save it as UTF-8.",
        ) from None
    if "\r" in text:  # as Python's text mode reads it: CRLF and a lone CR end a line
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def open_file(
    path: str | Path, kind: InputKind, *, error: type[GovrunError] = InputError
) -> BinaryIO:
    """``path`` open for reading if it is a regular file, else ``error`` saying what it is:
    the one way govrun opens a file it is handed."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        raise error(f"{path}: no such {kind.name}", hint=kind.hint) from None
    except IsADirectoryError:
        raise _folder(path, kind, error) from None
    except OSError as exc:
        raise error(f"{path}: cannot read the {kind.name} ({exc.strerror or exc})") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise _folder(path, kind, error)
        if not stat.S_ISREG(mode):
            what = _SPECIAL.get(stat.S_IFMT(mode), "a special file")
            raise error(
                f"{path}: the {kind.name} is {what}, not a regular file",
                hint="govrun reads only regular files: a pipe or a device can block, or never "
                "end. Save the content to a file.",
            )
        os.set_blocking(fd, True)
        return open(fd, "rb", closefd=True)  # the caller closes it
    except BaseException:
        os.close(fd)
        raise


def _folder(path: str | Path, kind: InputKind, error: type[GovrunError]) -> GovrunError:
    return error(f"{path}: the {kind.name} is a folder, not a file", hint=kind.hint)


def _too_large(path: str | Path, kind: InputKind, why: str) -> InputError:
    return InputError(
        f"{path}: the {kind.name} is too large ({why})",
        hint=f"Is this the right file? govrun reads at most {_size(kind.limit)} of a {kind.name}.",
    )


def _at(data: bytes, offset: int) -> str:
    line = data.count(b"\n", 0, offset) + 1
    return f"offset {offset}, line {line}"


def _size(n: int) -> str:
    """``1 MiB``, ``50.0 MiB``, ``64 KiB``, ``120 bytes``."""
    for unit, shift in (("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            value = n / (1 << shift)
            return f"{value:.0f} {unit}" if value.is_integer() else f"{value:.1f} {unit}"
    return f"{n} bytes"
