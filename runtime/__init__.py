"""govrun's kernel: manifest, events, trace, loop, policy and adapters. No terminal code."""

__version__ = "0.1.0"
