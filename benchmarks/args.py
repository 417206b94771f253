"""Argument types the benchmark scripts share."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """A count of steps, events or repetitions: argparse reports anything else as a usage
    error instead of a benchmark failing half-way with a traceback."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of at least 1, got {value}")
    return value
