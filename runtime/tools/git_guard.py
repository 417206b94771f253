"""git_guard: git never runs a program the repository configures, nor leaves the roots.

An agent that may write inside a work tree may write ``.git/config`` and
``.gitattributes``, and git obeys both: ``core.fsmonitor``, a hook, a pager,
``gpg.program``, a credential helper all run a program the agent chose, on commands as
harmless-looking as ``git status``.

1. **Isolation** (:func:`git_environment`, part of every git process's environment). No
   system, global or XDG config; ``GIT_CONFIG_COUNT`` overrides, which outrank the
   repository's config, switch off every *singleton* key whose override was tested to
   neutralize it (fsmonitor, hooks, pager, signature checks, credential helpers, implicit
   bare repositories); editors, askpass and every transport (``GIT_ALLOW_PROTOCOL``) are
   off, so no fetch, lazy fetch or remote helper runs. These hold even if the repository
   changes while git runs, and inside submodules (git passes them on).
2. **Ceilings** (``GIT_CEILING_DIRECTORIES`` = the roots' parents): repository discovery
   never climbs out of the roots, so a workspace inside another checkout does not pick up
   that checkout's ``.git``.

Keys that name a program per driver (``diff.<driver>.textconv``, ``filter.<driver>.clean``),
``diff.external``, aliases and includes cannot be switched off this way.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

OVERRIDES: tuple[tuple[str, str], ...] = (
    ("core.fsmonitor", "false"),
    ("core.hooksPath", os.devnull),
    ("core.pager", "cat"),
    ("log.showSignature", "false"),
    ("credential.helper", ""),  # the empty helper empties the list of helpers
    ("safe.bareRepository", "explicit"),  # a folder planted to look like a bare repository
)
"""Config overrides in every git environment; each was tested to neutralize its key when
the repository sets it (``tests/test_tools_git.py``). ``diff.external`` is not here: an
empty override makes ``git diff`` fail instead of switching it off."""


def git_environment(roots: Sequence[Path]) -> dict[str, str]:
    """The git part of a tool's fixed environment (see the module docstring)."""
    env = {
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_ATTR_NOSYSTEM": "1",
        "GIT_OPTIONAL_LOCKS": "0",  # status does not write the index (no post-index-change)
        "GIT_NO_REPLACE_OBJECTS": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "",  # empty: no askpass program, and none from core.askPass
        "GIT_EDITOR": ":",  # git's no-op editor, outranking core.editor
        "GIT_SEQUENCE_EDITOR": ":",
        "GIT_PAGER": "cat",
        "GIT_ALLOW_PROTOCOL": "",  # no transport at all: file, ssh, http, ext, helpers
        "GIT_CONFIG_COUNT": str(len(OVERRIDES)),
    }
    for i, (key, value) in enumerate(OVERRIDES):
        env[f"GIT_CONFIG_KEY_{i}"], env[f"GIT_CONFIG_VALUE_{i}"] = key, value
    ceilings, _ = _ceilings([Path(r) for r in roots])
    if ceilings:
        env["GIT_CEILING_DIRECTORIES"] = os.pathsep.join(ceilings)
    return env


def _ceilings(roots: Sequence[Path]) -> tuple[list[str], list[Path]]:
    """The roots' parents that lie inside no root (git would never climb past them), and
    the roots whose parent cannot be written into the colon-separated list."""
    ceilings: list[str] = []
    lost: list[Path] = []
    for root in roots:
        parent = root.parent
        if parent == root or any(parent.is_relative_to(r) for r in roots):
            continue
        if os.pathsep in str(parent):
            lost.append(root)
        elif str(parent) not in ceilings:
            ceilings.append(str(parent))
    return ceilings, lost
