"""A tools module that imports once per marker file (``$GOVRUN_TEST_ONCE``): the second
import, a worker process's, fails, as a module might that only works inside govrun."""

from __future__ import annotations

import os
from pathlib import Path

_MARKER = Path(os.environ["GOVRUN_TEST_ONCE"])
if _MARKER.exists():
    raise RuntimeError("this module was already imported once")
_MARKER.write_text("imported")


def ok() -> str:
    return "ok"
