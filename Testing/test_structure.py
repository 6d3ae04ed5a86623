"""The library's shape: its packages import one another without a cycle, and the parts that must stay light do."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict

from conftest import REPO_ROOT

LIBRARY = REPO_ROOT / "PilletGANLib"


def module_imports() -> dict[str, set[str]]:
    """``{module: library modules it imports at module level}`` (imports inside functions are lazy by design)."""
    modules = {}
    for path in LIBRARY.rglob("*.py"):
        name = ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ImportFrom):
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1]) if node.level else ""
                target = ".".join(p for p in (base, node.module or "") if p)
                candidates = [target, *(f"{target}.{alias.name}" for alias in node.names)]
            elif isinstance(node, ast.Import):
                candidates = [alias.name for alias in node.names]
            else:
                continue
            graph[name].update(c for c in candidates if c in modules and c != name)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_modules_and_packages_import_without_a_cycle() -> None:
    modules = module_imports()
    assert find_cycle(modules) is None, f"import cycle: {' -> '.join(find_cycle(modules))}"

    def package(module: str) -> str:
        return ".".join(module.split(".")[:2])

    packages: dict[str, set[str]] = defaultdict(set)
    for module, imported in modules.items():
        packages[package(module)].update(package(m) for m in imported if package(m) != package(module))
    assert find_cycle(packages) is None, f"package import cycle: {' -> '.join(find_cycle(packages))}"
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]  # the check finds one


def test_postprocessing_loads_no_torch_and_the_recipe_owner_sits_below_inference() -> None:
    code = ("import sys, PilletGANLib.postprocess; "
            "print(sorted({'torch', 'monai'} & {m.split('.')[0] for m in sys.modules}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120,
                            cwd=REPO_ROOT)
    assert result.stdout.strip() == "[]"
    modules = module_imports()
    below = [m for m in modules if m.startswith(("PilletGANLib.localization", "PilletGANLib.priors"))]
    for module in below:
        assert not {m for m in modules[module] if m.startswith(("PilletGANLib.inference", "PilletGANLib.engine",
                                                                 "PilletGANLib.bundle"))}, module
