"""The house rules (issue 16): one import name, rooms without cycles, a kernel without a
terminal. The import graph is read with ``ast`` — every import, including the ones inside
functions (a lazy import is still a dependency)."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).parents[1]
HALVES = {"runtime": "govrun.runtime", "cli": "govrun.cli"}
SPINE = {"__init__", "ports", "loop", "run", "errors"}
"""The only modules at runtime/'s root: the ports, the governed step, wiring a run, errors."""
TERMINAL = {"rich", "typer", "textual"}


def modules() -> dict[str, Path]:
    found = {}
    for folder, name in HALVES.items():
        for path in (REPO / folder).rglob("*.py"):
            parts = path.relative_to(REPO / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((name, *parts))] = path
    return found


def imports(path: Path, *, typing_only: bool = True) -> Iterator[tuple[int, str]]:
    """(line, module) of every import in a file. ``typing_only=False`` leaves out imports
    under ``if TYPE_CHECKING:``: they name a type for annotations and are never executed,
    so they cannot close a cycle at run time."""
    tree = ast.parse(path.read_text())
    if not typing_only:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
                node.body = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}:{node.lineno}: use absolute imports"
            base = node.module or ""
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"


def graph() -> dict[str, set[str]]:
    mods = modules()
    edges: dict[str, set[str]] = {name: set() for name in mods}
    for name, path in mods.items():
        for _, target in imports(path, typing_only=False):
            # `from pkg import mod` names a module; `from mod import name` its module
            while target and target not in mods:
                target = target.rpartition(".")[0]
            if target and target != name:
                edges[name].add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in edges:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles_in_runtime_or_cli() -> None:
    assert cycles(graph()) == []


LAYERS: list[tuple[str, ...]] = [
    ("govrun.runtime", "govrun.runtime.errors", "govrun.runtime.ports"),
    ("govrun.runtime.manifest", "govrun.runtime.tools", "govrun.runtime.trace"),
    ("govrun.runtime.models", "govrun.runtime.views.telemetry"),
    ("govrun.runtime.govern",),
    (
        "govrun.runtime.ops.undo",
        "govrun.runtime.ops.control",
        "govrun.runtime.ops.registry",
        "govrun.runtime.ops.approvals",
    ),
    ("govrun.runtime.loop",),
    ("govrun.runtime.run",),
    ("govrun.runtime.replayer",),
    ("govrun.runtime.ops", "govrun.runtime.views"),
    ("govrun.runtime.ops.temporal",),
]
"""The rooms from the bottom up (DESIGN section 1). A module imports only from its own
layer or below: the spine's ports and errors, then what a run is made of (manifest,
tools, trace), models and telemetry (which reads trace events, live too), the governed
step's stages, the undo and control mechanics the loop uses, the loop, wiring a run,
replay, what acts on or reads finished runs, and Temporal, which runs all of it."""


def layer(module: str) -> int:
    best = max(
        (
            prefix
            for group in LAYERS
            for prefix in group
            if module == prefix or module.startswith(prefix + ".")
        ),
        key=len,
    )
    return next(i for i, group in enumerate(LAYERS) if best in group)


def test_lower_rooms_never_import_higher_ones() -> None:
    bad = []
    for name, targets in graph().items():
        if not name.startswith("govrun.runtime"):
            continue
        for target in targets:
            if target.startswith("govrun.runtime") and layer(target) > layer(name):
                bad.append(f"{name} (layer {layer(name)}) imports {target} ({layer(target)})")
    assert bad == []


def test_the_kernel_imports_no_terminal_library_and_nothing_from_cli() -> None:
    bad = []
    for name, path in modules().items():
        if not name.startswith("govrun.runtime"):
            continue
        for line, target in imports(path):
            top = target.split(".")[0]
            if top in TERMINAL or target.startswith("govrun.cli") or top == "cli":
                bad.append(f"{path.relative_to(REPO)}:{line} imports {target}")
    assert bad == []


def test_nothing_imports_the_old_top_level_names() -> None:
    """`runtime` and `cli` exist only as folders; code imports govrun.runtime / govrun.cli."""
    bad = []
    for folder in ("runtime", "cli", "tests", "benchmarks", "fixtures"):
        for path in (REPO / folder).rglob("*.py"):
            for line, target in imports(path):
                if target.split(".")[0] in ("runtime", "cli"):
                    bad.append(f"{path.relative_to(REPO)}:{line} imports {target}")
    assert bad == []


def test_the_root_of_runtime_holds_only_the_spine_and_the_rooms() -> None:
    entries = sorted(p.name for p in (REPO / "runtime").iterdir() if p.name != "__pycache__")
    modules_at_root = {p[:-3] for p in entries if p.endswith(".py")}
    assert modules_at_root <= SPINE, modules_at_root - SPINE
    rooms = [p for p in entries if (REPO / "runtime" / p).is_dir()]
    assert all((REPO / "runtime" / room / "__init__.py").is_file() for room in rooms)
    # at most twelve (issue 16): later rooms go inside these — MCP in tools/, OpenTelemetry
    # in views/ (a layer of its own, below `run`, which exports live), Temporal in ops/.
    assert len([p for p in entries if p != "__init__.py"]) <= 12, entries


def test_every_room_says_what_it_is_for() -> None:
    for init in (REPO / "runtime").glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and len(doc.split()) >= 12, f"{init.relative_to(REPO)} needs a docstring"


def test_pyproject_installs_every_package_and_one_import_name() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert config["package-dir"] == HALVES | {} or config["package-dir"] == {
        v: k for k, v in HALVES.items()
    }
    on_disk = sorted(name for name, path in modules().items() if path.name == "__init__.py")
    assert sorted(config["packages"]) == on_disk
    assert {p.split(".")[0] for p in config["packages"]} == {"govrun"}


def test_the_readme_embedding_example_runs(tmp_path: Path, monkeypatch: Any) -> None:
    """The README's "Embedding govrun" code, as written, against the offline quickstart."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Embedding govrun", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    agents = REPO / "fixtures" / "agents"
    shutil.copytree(agents / "quickstart-workspace", tmp_path / "quickstart-workspace")
    manifest = (agents / "quickstart.yaml").read_text()
    script = (REPO / "fixtures" / "scripts" / "quickstart.yaml").resolve()
    (tmp_path / "agent.yaml").write_text(
        manifest.replace("script: ../scripts/quickstart.yaml", f"script: {script}")
    )
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})


def test_a_built_wheel_installs_one_import_name(tmp_path: Path) -> None:
    """`pip install .` adds exactly `govrun`; outside the repository `import runtime` and
    `import cli` fail while `govrun.runtime` and `govrun.cli` import."""
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(wheels),
            str(REPO),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = wheels.glob("govrun-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        tops = {name.split("/")[0] for name in archive.namelist()}
        assert tops == {
            "govrun",
            wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info",
        }
        assert "govrun/cli/inspect/inspect.tcss" in archive.namelist()
        starter = {f"govrun/cli/starter/{f}" for f in ("agent.yaml", "script.yaml")}
        assert starter | {"govrun/cli/starter/workspace/notes.md"} <= set(archive.namelist())
        archive.extractall(tmp_path / "site")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {"PYTHONPATH": str(tmp_path / "site"), "PATH": os.environ["PATH"]}

    def imports(statement: str) -> bool:
        ran = subprocess.run(
            [sys.executable, "-S", "-c", statement], cwd=outside, env=env, capture_output=True
        )
        return ran.returncode == 0

    assert imports("import govrun.runtime, govrun.cli; assert govrun.runtime.__version__")
    assert not imports("import runtime")
    assert not imports("import cli")
