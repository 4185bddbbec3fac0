"""The layers of docs/architecture.md hold, and the checks that guard them really bite."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bot", "handlers", "state", "lab")
# The units whose imports must form no cycle: the wiring, handlers, state, the lab, and
# each domain subpackage (bot.config and friends are leaves beside the domain).
DOMAIN = ("bot.alerts", "bot.directory", "bot.windows", "bot.remote", "bot.procedure")
UNITS = ("bot.app", "handlers", "state", "lab", *DOMAIN)
# The one documented way down-to-up: `ad1411 demo` and `ad1411 lab dc` import the lab lazily.
LAZY_LAB_IMPORTS = {("bot.app.cli", "lab.demo"), ("bot.app.cli", "lab.dcsim.cli")}


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(*PACKAGES, include_external_packages=False, cache_dir=None)


def _unit(module: str) -> str | None:
    return next((u for u in UNITS if module == u or module.startswith(u + ".")), None)


def _find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle in a directed graph, as a list of nodes, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)) is not None:
            return found
    return None


def _edges(graph: grimp.ImportGraph, modules: Iterable[str], key: object) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for module in modules:
        a = key(module)  # type: ignore[operator]
        if a is None:
            continue
        for imported in graph.find_modules_directly_imported_by(module):
            if (module, imported) in LAZY_LAB_IMPORTS:
                continue
            b = key(imported)  # type: ignore[operator]
            if b is not None and b != a:
                edges.setdefault(a, set()).add(b)
    return edges


def test_no_cycle_between_packages(graph: grimp.ImportGraph) -> None:
    cycle = _find_cycle(_edges(graph, graph.modules, _unit))
    assert cycle is None, "import cycle between packages: " + " -> ".join(cycle or [])


def test_no_cycle_between_modules_of_the_lab(graph: grimp.ImportGraph) -> None:
    lab = [m for m in graph.modules if m.startswith("lab.")]
    cycle = _find_cycle(_edges(graph, lab, lambda m: m if m.startswith("lab.") else None))
    assert cycle is None, "import cycle in lab/: " + " -> ".join(cycle or [])


def test_the_cli_imports_the_lab_only_inside_functions() -> None:
    tree = ast.parse((ROOT / "bot" / "app" / "cli.py").read_text(encoding="utf-8"))
    top_level = [
        node
        for node in tree.body
        if isinstance(node, ast.ImportFrom | ast.Import)
        and any(
            name.startswith("lab")
            for name in (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [a.name for a in node.names]
            )
        )
    ]
    assert top_level == []
    lazy = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lab")
    ]
    assert {n.module for n in lazy} == {"lab.demo", "lab.dcsim.cli"}


def test_the_wheel_leaves_the_lab_out() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'include = ["bot*", "handlers*", "state*"]' in pyproject


@pytest.mark.parametrize(
    ("path", "line", "contract"),
    [
        ("bot/windows/leak.py", "import redis\n", "domain-pure"),
        ("bot/procedure/leak.py", "import slack_sdk\n", "domain-pure"),
        ("state/leak.py", "import bot.config\n", "state-alone"),
        ("handlers/leak.py", "import bot.app.serve\n", "handlers-thin"),
        ("handlers/render/leak.py", "import slack_bolt\n", "render-without-bolt"),
        ("bot/directory/leak.py", "from lab import samba\n", "lab-optional"),
        ("state/leak.py", "import handlers.app\n", "layers"),
    ],
)
def test_breaking_a_contract_fails_the_check(
    tmp_path: Path, path: str, line: str, contract: str
) -> None:
    for name in (*PACKAGES, "pyproject.toml"):
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, tmp_path / name)
    (tmp_path / path).write_text(line, encoding="utf-8")
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint), "--no-cache", "--contract", contract],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode != 0, result.stdout
    assert "0 kept, 1 broken" in result.stdout, result.stdout
