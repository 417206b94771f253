"""Damage is always said (issue 17): on a trace with a deleted line, a torn tail or an
edited event, `diff`, `replay`, `show` and `inspect` each name verify's own finding —
the same seq and reason — before anything else."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import orjson
import pytest

from govrun.cli.commands.inspect import inspector
from govrun.runtime.trace.verify import verify_trace
from tests.support.cli import invoke

QUICKSTART = Path(__file__).parents[1] / "fixtures" / "golden" / "quickstart.jsonl"


def damaged(tmp_path: Path, how: str) -> Path:
    lines = QUICKSTART.read_bytes().splitlines(keepends=True)
    if how == "deleted":
        del lines[20]
    elif how == "torn":
        lines[-1] = lines[-1][: len(lines[-1]) // 2]
    else:  # edited
        event = orjson.loads(lines[15])
        event["ts"] = "2030-01-01T00:00:00.000000Z"
        lines[15] = orjson.dumps(event, option=orjson.OPT_SORT_KEYS) + b"\n"
    path = tmp_path / f"{how}.jsonl"
    path.write_bytes(b"".join(lines))
    return path


@pytest.mark.parametrize("how", ["deleted", "torn", "edited"])
def test_every_reader_names_verifys_finding(tmp_path: Path, how: str) -> None:
    path = damaged(tmp_path, how)
    problem = verify_trace(path).problem
    assert problem is not None
    finding = " ".join(problem.message.split())
    good = tmp_path / "good.jsonl"
    shutil.copy(QUICKSTART, good)

    for args in (("diff", good, path), ("show", path), ("replay", path, "-o", tmp_path / "r")):
        ran = invoke(*args)
        ran.assert_clean()
        assert finding in ran.flat, (args, ran.flat)
        first = ran.err.strip().splitlines()[0] if ran.err.strip() else ""
        assert path.name in first, (args, first)  # before anything else
        if how != "torn":
            assert "altered" in ran.flat
    if how != "torn":
        assert invoke("replay", path, "-o", tmp_path / "r2").code == 2  # never on an edit

    async def header() -> str:
        app = inspector(path)
        async with app.run_test(size=(200, 40)):
            return str(app.query_one("#header").render())

    text = " ".join(asyncio.run(header()).split())
    assert finding[:60] in text
