"""The trace file: canonical chained lines, durability, secrets, blobs, torn tails, newer
schemas, random access, and write errors that halt the run."""

from __future__ import annotations

import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import orjson
import pytest

from govrun.runtime.errors import TraceError, TraceWriteError
from govrun.runtime.ports import FixedClock
from govrun.runtime.trace.canonical import MAX_LINE_BYTES, blob_dir, canonical, sha256_hex
from govrun.runtime.trace.events import (
    ZERO_HASH,
    Event,
    ModelRequest,
    ModelResponse,
    RunFinished,
    RunStarted,
    StepStarted,
    ToolCallProposed,
    ToolFinished,
)
from govrun.runtime.trace.reader import (
    TraceIndex,
    TraceReader,
    check_trace,
    gc_frozen,
    read_stored,
    read_trace,
)
from govrun.runtime.trace.verify import verify_trace
from govrun.runtime.trace.writer import BLOB_THRESHOLD, REDACTED, TraceWriter
from tests.support.traces import BIG_OUTPUT_BYTES, read_lines, rechain, write_run

REPO = Path(__file__).resolve().parents[1]


def _writer(path: Path, **kwargs: Any) -> TraceWriter:
    return TraceWriter(path, run_id="run-t", clock=FixedClock(tick=0.25), **kwargs)


# --- format ----------------------------------------------------------------------------


def test_lines_are_canonical_and_chained(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    hashes = write_run(path, steps=3)
    raw = path.read_bytes()
    assert raw.endswith(b"\n")
    lines = raw.splitlines()
    assert len(lines) == len(hashes) == 23

    prev = ZERO_HASH
    for seq, line in enumerate(lines):
        data = orjson.loads(line)
        assert line == orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
        assert (data["seq"], data["prev"], data["run_id"], data["v"]) == (seq, prev, "run-0001", 2)
        claimed = data.pop("hash")
        assert claimed == sha256_hex(canonical(data)) == hashes[seq]
        prev = claimed
    last = orjson.loads(lines[-1])
    assert last["type"] == "run_finished"
    assert (last["event_count"], last["head"]) == (23, last["prev"])


def test_writer_stamps_envelope_and_notifies_observers(tmp_path: Path) -> None:
    seen: list[Event] = []
    with _writer(tmp_path / "run.jsonl", observers=[seen.append]) as writer:
        first = writer.append(StepStarted(step=1))
        second = writer.append(StepStarted(step=1))
        assert (writer.seq, writer.head) == (2, second)
    assert writer.closed
    assert [(e.seq, e.prev, e.hash, e.run_id) for e in seen] == [
        (0, ZERO_HASH, first, "run-t"),
        (1, first, second, "run-t"),
    ]
    assert seen[0].ts == "2026-09-21T14:13:20.250000Z"


def test_each_event_is_on_disk_when_append_returns(tmp_path: Path) -> None:
    """No close, no flush call: another reader sees every line as soon as append returns."""
    path = tmp_path / "run.jsonl"
    writer = _writer(path)
    try:
        for n in range(1, 4):
            digest = writer.append(StepStarted(step=n))
            with open(path, "rb") as other:
                lines = other.read().splitlines()
            assert len(lines) == n
            assert orjson.loads(lines[-1])["hash"] == digest
            assert [e.hash for e in TraceReader(path)][-1] == digest
    finally:
        writer.close()


def test_fsync_durability(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    hashes = write_run(path, durability="fsync", big_output_at=3)
    report = verify_trace(path)
    assert report.ok, report.problem
    assert (report.events, report.head, report.blobs) == (len(hashes), hashes[-1], 2)


def test_refuses_to_overwrite_a_trace(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    write_run(path)
    before = path.read_bytes()
    with pytest.raises(TraceError, match="never overwrites"):
        _writer(path)
    assert path.read_bytes() == before


# --- secrets ---------------------------------------------------------------------------

SECRETS = [
    "sk-proj-4f9a8b7c6d5e4f3a2b1c",
    'hunter2"; DROP\\TABLE',  # a quote and a backslash: JSON escapes both
    "line1\nline2\tend",  # control characters
    "clé-ünï-κλειδί",  # non-ASCII: json.dumps writes it as \\uXXXX
]


def _leak_forms(secret: str, depth: int = 4) -> set[bytes]:
    """Every encoding under which the secret could be recovered from the file: as is, and
    JSON-escaped up to ``depth - 1`` times by orjson or json.dumps."""
    forms, level = set(), {secret}
    for _ in range(depth):
        forms |= level
        level = {e for f in level for e in (orjson.dumps(f).decode()[1:-1], json.dumps(f)[1:-1])}
    return {f.encode() for f in forms}


@pytest.mark.parametrize("secret", SECRETS)
def test_secrets_never_reach_the_file_or_blobs(tmp_path: Path, secret: str) -> None:
    path = tmp_path / "run.jsonl"
    seen: list[Event] = []
    big = "x" * BLOB_THRESHOLD + f" token={secret} " + "y" * 100
    args_json = json.dumps({"token": secret, "url": "https://api.example.com"})
    with _writer(path, secrets=[secret, ""], observers=[seen.append]) as writer:
        writer.append(
            RunStarted(
                agent="a",
                manifest={"env": {"API_KEY": secret}},
                manifest_hash="0" * 64,
                input=f"use {secret} please",
            )
        )
        writer.append(
            ModelResponse(
                step=1,
                model="m",
                tool_calls=[{"id": "c1", "name": "http.get", "arguments": args_json}],
            )
        )
        writer.append(
            ToolCallProposed(step=1, call_id="c1", tool="http.get", raw_arguments=args_json)
        )
        writer.append(
            ToolCallProposed(
                step=1,
                call_id="c2",
                tool="http.get",
                raw_arguments=json.dumps(args_json),  # JSON text inside JSON text
            )
        )
        writer.append(ToolFinished(step=1, call_id="c1", tool="http.get", ok=True, output=big))
        writer.append(
            ModelRequest(
                step=2,
                model="m",
                messages_added=[{"role": "tool", "content": f"the key is {secret}"}],
                message_count=3,
                prompt_hash="0" * 64,
            )
        )
        writer.append(RunFinished(status="completed", event_count=writer.seq + 1, head=writer.head))

    files = [path, *sorted(blob_dir(path).iterdir())]
    assert len(files) == 2
    for f in files:
        content = f.read_bytes()
        for form in _leak_forms(secret):
            assert form not in content, (f.name, form)
        assert REDACTED.encode() in content

    events = read_trace(path)[0]
    assert events[0].input == f"use {REDACTED} please"
    assert events[0].manifest == {"env": {"API_KEY": REDACTED}}
    assert json.loads(events[2].raw_arguments)["token"] == REDACTED
    assert json.loads(json.loads(events[3].raw_arguments))["token"] == REDACTED
    assert json.loads(events[1].tool_calls[0]["arguments"])["token"] == REDACTED
    assert events[4].output.endswith(f" token={REDACTED} " + "y" * 100)
    assert secret not in repr(seen)  # observers see the redacted event too
    report = verify_trace(path)
    assert report.ok, report.problem


def test_secrets_are_redacted_in_values_never_in_keys(tmp_path: Path) -> None:
    """A key is a field name (the event's own, a manifest's, a tool argument's): rewriting
    one made a trace whose events no longer parse (issue 20: the key `x` turned `check`
    into `chec[redacted]`). Values holding the secret are still redacted."""
    path = tmp_path / "run.jsonl"
    secret = "checkpoint"
    with _writer(path, secrets=[secret]) as writer:
        writer.append(
            RunStarted(
                agent="a",
                manifest={"success": [{"check": "file_exists", "checkpoint": secret}]},
                manifest_hash="0" * 64,
                input=f"{secret}s and more",
            )
        )
        writer.append(RunFinished(status="completed", event_count=writer.seq + 1, head=writer.head))

    started = read_trace(path)[0][0]
    assert started.manifest == {"success": [{"check": "file_exists", "checkpoint": REDACTED}]}
    assert started.input == f"{REDACTED}s and more"
    assert verify_trace(path).ok


def test_secrets_in_a_realistic_run(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    secrets = ["sk-live-0123456789abcdef", 'p@ss"word']
    write_run(path, secrets=secrets)
    raw = path.read_bytes()
    for secret in secrets:
        assert not any(form in raw for form in _leak_forms(secret))
    assert raw.count(REDACTED.encode()) >= 5
    assert verify_trace(path).ok


# --- blobs -----------------------------------------------------------------------------


def test_large_output_goes_to_a_blob(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    hashes = write_run(path, big_output_at=3)
    blobs = sorted(blob_dir(path).iterdir())
    assert len(blobs) == 1  # the output and the next prompt share one content-addressed blob
    content = blobs[0].read_bytes()
    assert len(content) == BIG_OUTPUT_BYTES
    assert blobs[0].name == sha256_hex(content)

    lines = read_lines(path)
    assert max(len(line) for line in lines) < 8_000
    refs = [n for n, line in enumerate(lines) if b'"$blob"' in line]
    assert len(refs) == 2
    data = orjson.loads(lines[refs[0]])
    assert data["output"] == {"$blob": blobs[0].name, "size": BIG_OUTPUT_BYTES}

    finished = next(e for e in TraceReader(path) if isinstance(e, ToolFinished) and e.step == 3)
    assert finished.output == content.decode()
    assert finished.evidence["sha256"] == blobs[0].name
    with TraceIndex(path) as index:
        assert index.get(refs[0]).output == content.decode()
        assert index.get(refs[1]).messages_added[1]["content"] == content.decode()
        unloaded = index.get(refs[0], resolve_blobs=False)
        assert unloaded.hash == hashes[refs[0]]
        assert unloaded.output == f"[blob {blobs[0].name[:12]}… 70000 bytes, not loaded]"
    lazy = TraceReader(path, resolve_blobs=False).events()
    assert [e.hash for e in lazy] == hashes
    assert lazy[refs[0]].output == unloaded.output
    report = verify_trace(path)
    assert report.ok and report.blobs == 2


def test_blob_threshold_applies_to_nested_strings(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    text = "é" * 60  # 120 UTF-8 bytes
    with _writer(path, blob_threshold=100) as writer:
        writer.append(
            ModelRequest(
                step=1,
                model="m",
                messages_added=[{"role": "user", "content": text}, {"role": "x", "content": "s"}],
                message_count=2,
                prompt_hash="0" * 64,
            )
        )
    assert b'"$blob"' in path.read_bytes()
    assert read_trace(path)[0][0].messages_added[0]["content"] == text
    assert verify_trace(path).blobs == 1


@pytest.mark.parametrize("damage", ["edit", "delete", "truncate"])
def test_damaged_blob_fails_verify(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "run.jsonl"
    write_run(path, big_output_at=3)
    (blob,) = blob_dir(path).iterdir()
    if damage == "edit":
        raw = bytearray(blob.read_bytes())
        raw[1000] ^= 0x01
        blob.write_bytes(bytes(raw))
    elif damage == "delete":
        blob.unlink()
    else:
        blob.write_bytes(blob.read_bytes()[:-1])
    report = verify_trace(path)
    assert report.problem is not None and report.problem.kind == "bad_blob"
    assert not report.intact
    assert blob.name[:12] in report.problem.message


def test_reader_shows_a_missing_blob_as_a_placeholder(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    write_run(path, big_output_at=3)
    shutil.rmtree(blob_dir(path))
    outputs = [e.output for e in TraceReader(path) if isinstance(e, ToolFinished)]
    assert any("missing" in o for o in outputs)


def test_a_blob_reference_is_a_hash_never_a_path(tmp_path: Path) -> None:
    """A crafted reference must not make a viewer show another file, nor verify read it."""
    secret = tmp_path / "private.txt"
    secret.write_text("not yours")
    path = tmp_path / "run.jsonl"
    write_run(path, big_output_at=3)
    events = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    for e in events:
        if isinstance(e.get("output"), dict):
            e["output"] = {"$blob": "../private.txt", "size": 9}
    path.write_bytes(rechain(events))

    outputs = [e.output for e in TraceReader(path) if isinstance(e, ToolFinished)]
    assert not any("not yours" in str(o) for o in outputs)
    report = verify_trace(path)
    assert report.problem is not None and report.problem.kind == "bad_blob"
    assert "is not a SHA-256 hash" in report.problem.message


# --- torn and damaged traces -----------------------------------------------------------


def test_reader_tolerates_a_torn_final_line(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    hashes = write_run(path, steps=3)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:20]) + lines[20][:57])

    reader = TraceReader(path)
    events = reader.events()
    assert [e.hash for e in events] == hashes[:20]
    assert reader.torn is not None
    assert (reader.torn.line, reader.torn.after_seq, reader.torn.size) == (21, 19, 57)
    assert reader.torn.offset == sum(len(line) for line in lines[:20])
    assert read_trace(path) == (events, reader.torn)


def test_final_line_missing_only_its_newline_is_complete(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    hashes = write_run(path)
    path.write_bytes(path.read_bytes()[:-1])
    events, torn = read_trace(path)
    assert torn is None
    assert [e.hash for e in events] == hashes
    assert verify_trace(path).ok


def test_torn_first_line(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    path.write_bytes(b'{"agent":"a","hash":"12')
    events, torn = read_trace(path)
    assert events == [] and torn is not None and torn.after_seq is None


def test_empty_or_missing_trace_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_bytes(b"")
    with pytest.raises(TraceError, match="empty"):
        read_trace(tmp_path / "empty.jsonl")
    with pytest.raises(TraceError, match="no such trace"):
        TraceReader(tmp_path / "nope.jsonl")


@pytest.mark.parametrize(
    ("start", "reason"),
    [
        (b"\x00\x00\x00", "it begins with a NUL byte (binary data), not a JSON object"),
        (b"\x8f\x02{", "it begins with byte 0x8f (binary data), not a JSON object"),
        (b'\xef\xbb\xbf{"a": 1}\n', "it begins with a UTF-8 byte-order mark, not a JSON object"),
        (b"[" * 30, "it begins with '[[[[[[[[[[[[[[[[[[[[…', not a JSON object"),
        (b"name: agent\n", "it begins with 'name: agent', not a JSON object"),
        (b"\n{}\n", "it begins with an empty line, not a JSON object"),
    ],
)
def test_a_file_that_does_not_begin_like_a_trace_is_refused(
    tmp_path: Path, start: bytes, reason: str
) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(start)
    with pytest.raises(TraceError) as caught:
        check_trace(path)
    assert str(caught.value) == f"{path} is not a govrun trace: {reason}."


def test_a_first_line_longer_than_any_event_is_refused_without_reading_it_all(
    tmp_path: Path,
) -> None:
    path = tmp_path / "long.jsonl"
    with path.open("wb") as f:
        f.write(b'{"agent": "')
        f.truncate(MAX_LINE_BYTES + (4 << 20))  # sparse: no disk, reads as NUL bytes
    with pytest.raises(TraceError, match="its first line is longer than 16 MiB"):
        check_trace(path)
    path.write_bytes(b'{"agent": "' + b"x" * (1 << 20))  # a long torn first line: a crash
    check_trace(path)


def test_a_folder_or_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match=r"the trace is a folder, not a file"):
        read_trace(tmp_path)
    fifo = tmp_path / "fifo.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(TraceError, match=r"the trace is a named pipe \(FIFO\), not a regular"):
        verify_trace(fifo)


@pytest.mark.parametrize(
    "junk",
    [b'{"seq": 4, "type": "tool_fin', b"", b"[1, 2]", b'{"type": "not_an_event", "seq": 4}'],
)
def test_damaged_middle_line_raises_with_file_and_line(tmp_path: Path, junk: bytes) -> None:
    path = tmp_path / "run.jsonl"
    write_run(path)
    lines = read_lines(path)
    lines[4] = junk
    path.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(TraceError) as info:
        TraceReader(path).events()
    assert f"{path}:5:" in str(info.value)


def test_newer_major_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    write_run(path)
    events = [{**orjson.loads(line), "v": 3} for line in read_lines(path)]
    path.write_bytes(rechain(events))

    for read in (lambda: read_trace(path), lambda: verify_trace(path)):
        with pytest.raises(TraceError) as info:
            read()
        assert "v3" in str(info.value) and "Upgrade govrun" in str(info.value)
    with TraceIndex(path) as index, pytest.raises(TraceError, match="Upgrade govrun"):
        index.get(3)


def test_newer_major_version_in_a_torn_final_line_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    write_run(path)
    events = [orjson.loads(line) for line in read_lines(path)]
    events[-1]["v"] = 3
    path.write_bytes(rechain(events)[:-1])
    with pytest.raises(TraceError, match="Upgrade govrun"):
        read_trace(path)


# --- random access ---------------------------------------------------------------------


def test_index_random_access(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    hashes = write_run(path, steps=4)
    with TraceIndex(path) as index:
        assert len(index) == len(hashes) == 30
        assert index.get(0).type == "run_started"
        assert index.get(29).type == index.get(-1).type == "run_finished"
        assert index.get(-30).hash == hashes[0]
        assert [index.get(n).hash for n in range(len(index))] == hashes
        assert index.raw(7) == read_lines(path)[7]
        for n in (30, 1000, -31):
            with pytest.raises(IndexError, match="out of range"):
                index.get(n)


def test_index_follows_a_live_writer(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    with _writer(path) as writer:
        writer.append(StepStarted(step=1))
        with TraceIndex(path) as index:
            assert len(index) == 1
            assert index.refresh() == 0
            last = [writer.append(StepStarted(step=n)) for n in range(2, 6)][-1]
            assert len(index) == 1
            assert index.refresh() == 4
            assert len(index) == 5 and index.get(-1).hash == last


def test_index_ignores_a_torn_tail_until_it_is_completed(tmp_path: Path) -> None:
    source = tmp_path / "source.jsonl"
    hashes = write_run(source)
    lines = source.read_bytes().splitlines(keepends=True)
    path = tmp_path / "follow.jsonl"
    with open(path, "wb") as out:
        out.write(b"".join(lines[:10]))
        out.flush()
        with TraceIndex(path) as index:
            assert len(index) == 10
            out.write(b"".join(lines[10:15]) + lines[15][:40])
            out.flush()
            assert index.refresh() == 5 and len(index) == 15
            assert index.get(-1).hash == hashes[14]
            out.write(lines[15][40:-1])  # everything but the newline
            out.flush()
            assert index.refresh() == 0
            out.write(b"\n")
            out.flush()
            assert index.refresh() == 1 and index.get(15).hash == hashes[15]
            out.write(b"".join(lines[16:]))
            out.flush()
            assert index.refresh() == len(hashes) - 16
            assert [index.get(n).hash for n in range(len(index))] == hashes


# --- write errors are fatal ------------------------------------------------------------

_FILL = textwrap.dedent(
    """
    import json, resource, signal, sys
    from govrun.runtime.errors import TraceWriteError
    from govrun.runtime.trace.events import ModelResponse
    from govrun.runtime.ports import FixedClock
    from govrun.runtime.trace.writer import TraceWriter

    path, limit, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    held = len(sys.argv) > 4  # lines wait in memory and go out in batches of 7
    writer = TraceWriter(path, run_id="run-fsize", clock=FixedClock(tick=0.25))
    if held:
        writer.hold = frozenset({ModelResponse})
    if limit:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of a signal
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    appended, errors = 0, []

    def event(n):
        return ModelResponse(step=n // 10 + 1, model="m", content=f"answer {n} " + "x" * 100)

    try:
        while appended < count:
            writer.append(event(appended))
            appended += 1
            if held and appended % 7 == 0:
                writer.flush()
    except TraceWriteError as exc:
        errors.append(str(exc))
        try:
            writer.append(event(appended))
        except TraceWriteError as again:
            errors.append(str(again))
    result = {"appended": appended, "errors": errors, "head": writer.head, "seq": writer.seq}
    print(json.dumps(result))
    """
)


def _fill(path: Path, limit: int, count: int = 1000, *, held: bool = False) -> dict[str, Any]:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _FILL,
            str(path),
            str(limit),
            str(count),
            *(["held"] if held else []),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def line_ends(tmp_path_factory: pytest.TempPathFactory) -> list[int]:
    """Byte offsets just past each line of the trace ``_FILL`` writes without a limit."""
    path = tmp_path_factory.mktemp("fill") / "reference.jsonl"
    assert _fill(path, 0, count=40)["appended"] == 40
    ends, total = [], 0
    for line in path.read_bytes().splitlines(keepends=True):
        total += len(line)
        ends.append(total)
    return ends


@pytest.mark.parametrize(("extra", "kind"), [(0, "unfinished"), (57, "torn")])
def test_write_error_is_fatal_and_loses_nothing(
    tmp_path: Path, line_ends: list[int], extra: int, kind: str
) -> None:
    """A full disk (RLIMIT_FSIZE) mid-run: the append raises, the writer refuses more, and
    the file holds every event before the failure, ending at most in a torn line."""
    path = tmp_path / "run.jsonl"
    limit = line_ends[19] + extra  # room for 20 whole lines (+ part of the 21st)
    result = _fill(path, limit)

    assert result["appended"] == 20
    first, second = result["errors"]
    assert str(path) in first and "the run halts" in first and "File too large" in first
    assert str(path) in second and "unusable" in second
    assert path.stat().st_size == limit

    report = verify_trace(path)
    assert report.problem is not None
    assert report.problem.kind == kind and report.problem.is_crash and report.intact
    assert (report.events, report.head) == (20, result["head"])
    events, torn = read_trace(path)
    assert [e.seq for e in events] == list(range(20))
    assert (torn is not None) == (kind == "torn")


@pytest.mark.parametrize("extra", [0, 57])
def test_write_error_in_a_held_batch_rewinds_to_the_last_whole_line(
    tmp_path: Path, line_ends: list[int], extra: int
) -> None:
    """Held lines go out seven at a time; the disk fills in the middle of the third batch.
    The writer's seq and head are then those of the last whole line on disk, as verify
    finds them, and nothing before it is lost."""
    path = tmp_path / "run.jsonl"
    limit = line_ends[17] + extra  # 18 whole lines: the third batch (lines 15-21) is cut
    result = _fill(path, limit, held=True)

    assert result["appended"] == 21 and len(result["errors"]) == 2
    assert "File too large" in result["errors"][0] and "unusable" in result["errors"][1]
    report = verify_trace(path)
    assert report.problem is not None and report.problem.is_crash and report.intact
    assert (report.events, report.head) == (18, result["head"]) and result["seq"] == 18


_CREATE = textwrap.dedent(
    """
    import os, sys
    from govrun.runtime.errors import TraceWriteError
    from govrun.runtime.trace.writer import TraceWriter
    if os.geteuid() == 0:
        try:
            os.setuid(65534)  # root ignores permissions; 'nobody' does not
        except PermissionError:
            sys.exit(print("SKIP: cannot drop root privileges here"))
    try:
        TraceWriter(sys.argv[1], run_id="r")
    except TraceWriteError as exc:
        print(exc)
    """
)


def test_unwritable_directory_fails_at_creation() -> None:
    base = Path(tempfile.mkdtemp(prefix="govrun-ro-"))
    try:
        base.chmod(0o755)
        readonly = base / "readonly"
        readonly.mkdir()
        readonly.chmod(0o555)
        target = readonly / "run.jsonl"
        proc = subprocess.run(
            [sys.executable, "-c", _CREATE, str(target)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        if proc.stdout.startswith("SKIP"):
            pytest.skip(proc.stdout.strip())
        assert proc.stdout.strip() == f"cannot create trace {target}: Permission denied"
        assert not target.exists()
    finally:
        shutil.rmtree(base)


def test_file_in_place_of_the_folder_fails_at_creation(tmp_path: Path) -> None:
    (tmp_path / "runs").write_text("not a folder")
    with pytest.raises(TraceWriteError, match=r"cannot create trace .*cannot make folder"):
        _writer(tmp_path / "runs" / "run.jsonl")
    assert os.listdir(tmp_path) == ["runs"]


def test_gc_frozen_leaves_what_lives_out_of_collections_for_the_block_only() -> None:
    """Replay freezes the loaded record so that the collector's full passes do not walk
    every event again; the objects are ordinary afterwards, and an outer freeze is left
    to its owner."""
    assert gc.get_freeze_count() == 0
    with gc_frozen():
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0
    gc.freeze()
    try:
        outer = gc.get_freeze_count()
        with gc_frozen():
            assert gc.get_freeze_count() == outer
        assert gc.get_freeze_count() == outer
    finally:
        gc.unfreeze()


# --- what the writer refuses, and never leaves behind -----------------------------------------


def test_a_writer_that_wrote_nothing_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    TraceWriter(path, run_id="r").close()
    assert not path.exists()


def test_an_event_json_cannot_hold_halts_and_leaves_no_empty_trace(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    writer = TraceWriter(path, run_id="r", clock=FixedClock())
    with pytest.raises(TraceWriteError, match="a run_started event holds a value JSON cannot"):
        writer.append(RunStarted(agent="a", manifest={"n": 2**64}, manifest_hash="0" * 64))
    assert writer.broken
    writer.close()
    assert not path.exists()


def test_an_event_longer_than_a_trace_line_may_be_halts_the_run(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    writer = TraceWriter(path, run_id="r", clock=FixedClock())
    writer.append(RunStarted(agent="a", manifest={}, manifest_hash="0" * 64))
    pieces = ["x" * 60_000] * (MAX_LINE_BYTES // 60_000 + 1)  # each under the blob threshold
    with pytest.raises(TraceWriteError, match="over the 16 MiB a trace line may hold"):
        writer.append(ToolFinished(step=1, call_id="c1", tool="t", ok=True, data={"p": pieces}))
    writer.close()
    events, torn = read_trace(path)
    assert [e.type for e in events] == ["run_started"] and torn is None


def test_a_line_longer_than_any_event_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    good = (REPO / "fixtures" / "traces" / "complete.jsonl").read_bytes()
    for tail in (b"\n", b""):  # a complete line, and a torn one
        path.write_bytes(good + b'{"a": "' + b"x" * MAX_LINE_BYTES + b'"}' + tail)
        for read in (read_trace, read_stored, TraceIndex):
            with pytest.raises(TraceError, match=r"run\.jsonl:40: longer than 16 MiB"):
                read(path)
        problem = verify_trace(path).problem
        assert problem is not None and problem.kind == "edited" and problem.line == 40
        assert "is longer than 16 MiB, and no govrun event is" in problem.message
