"""The house's rules that a reader cannot see at a glance: no import cycles, the controller
never imports training nor the packages of the ``train`` extra, and the `focuslock` command never
loads TensorFlow, Dask's distributed or Zarr until a training command runs
(docs/architecture.md)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("controller", "training")
# The train extra's packages (pyproject.toml): never on the box
TRAIN_ONLY = ("tensorflow", "keras", "tf_keras", "tqdm", "dask", "distributed", "zarr", "fsspec")


def _module_files() -> dict[str, Path]:
    files = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            files[name] = path
    return files


def _is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def _imports_at_import_time(tree: ast.Module, module: str, is_package: bool) -> set[str]:
    """Modules named by imports that run when ``module`` is imported (not those in functions or
    under ``if TYPE_CHECKING``)."""
    names: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                names.add(base)
                names.update(f"{base}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.If) and not _is_type_checking(node):
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)

    visit(tree.body)
    return names


def _import_graph() -> dict[str, set[str]]:
    """Module -> the project modules importing it executes: each named module and the packages
    above it (their ``__init__`` runs first), except the importer's own packages."""
    files = _module_files()
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        own = {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)}
        targets: set[str] = set()
        for name in _imports_at_import_time(ast.parse(path.read_text()), module,
                                            path.name == "__init__.py"):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):
                prefix = ".".join(parts[:i])
                if prefix in files and prefix not in own and prefix != module:
                    targets.add(prefix)
        graph[module] = targets
    return graph


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return [*path[path.index(target):], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_graph_sees_real_imports() -> None:
    graph = _import_graph()
    assert "controller.features" in graph["controller.model"]
    assert "controller.sim" in graph["controller.sim.rigs"] or "controller.sim.devices" in graph[
        "controller.sim.rigs"]
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycles() -> None:
    cycle = _find_cycle(_import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_controller_never_imports_training_at_import_time() -> None:
    graph = _import_graph()
    offenders = {module: sorted(t for t in targets if t.split(".")[0] == "training")
                 for module, targets in graph.items() if module.startswith("controller")}
    assert not {m: t for m, t in offenders.items() if t}


def test_the_controller_names_no_package_of_the_train_extra() -> None:
    """Not at import time, nor inside a function: the box does not have them installed."""
    offenders = {}
    for module, path in _module_files().items():
        if module.split(".")[0] != "controller":
            continue
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names.add(node.module or "")
        bad = sorted(n for n in names if n.split(".")[0] in TRAIN_ONLY)
        if bad:
            offenders[module] = bad
    assert not offenders


def test_the_box_command_loads_neither_tensorflow_nor_the_training_code() -> None:
    # Every controller module imported, and the whole parser built (training's subcommands
    # join through the entry-point group): TensorFlow stays unloaded.
    script = """
import importlib, pkgutil, sys
import controller
for info in pkgutil.walk_packages(controller.__path__, "controller."):
    importlib.import_module(info.name)
assert not any(m.split(".")[0] == "training" for m in sys.modules), "controller imported training"
from controller.cli import build_parser
parser = build_parser()
commands = parser._subparsers._group_actions[0].choices
assert {"train", "evaluate", "train-data", "dataset", "lock", "serve"} <= set(commands), \
    sorted(commands)
# (dask itself may be loaded: pyfftw imports it when it is installed, for its dask interface)
heavy = sorted(m for m in sys.modules
               if m.split(".")[0] in ("tensorflow", "keras", "tf_keras", "distributed", "zarr",
                                      "fsspec"))
assert not heavy, heavy
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
