"""Imports flow one way: a module imports only from modules above it in this list (docs/design.md)."""

import ast
from pathlib import Path

import secondtry

LAYERS = [
    "types",
    "records",
    "log",
    "machine",
    "memory",
    "models",
    "config",
    "plugins",
    "distributed",
    "store",
    "tasks",
    "verifiers",
    "conditions",
    "backends",
    "filtering",
    "training",
    "evaluation",
    "stopping",
    "presets",
    "loop",
    "report",
    "toy",
    "importer",
    "bench",
    "parallel",
    "cli",
]
SRC = Path(secondtry.__file__).parent


def _unit(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    return rel.parts[0]


def _targets(path: Path) -> set[str]:
    return targets(path.read_text(), path.relative_to(SRC).parent.parts)


def targets(code: str, pkg: tuple[str, ...]) -> set[str]:
    """Top-level secondtry units `code` imports (also inside functions); pkg: its package below secondtry."""
    out = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(pkg[: len(pkg) - (node.level - 1)]) if node.level > 1 else list(pkg)
                parts = base + (node.module.split(".") if node.module else [])
                if parts:
                    out.add(parts[0])
                else:  # "from . import x" at the top of the package
                    out.update(a.name for a in node.names)
            elif node.module and node.module.split(".")[0] == "secondtry":
                rest = node.module.split(".")[1:]
                out.update(rest[:1] or [a.name for a in node.names])
        elif isinstance(node, ast.Import):
            for a in node.names:
                parts = a.name.split(".")
                if parts[0] == "secondtry" and len(parts) > 1:
                    out.add(parts[1])
    return out


def test_every_module_is_placed_in_a_layer():
    units = {_unit(p) for p in SRC.rglob("*.py") if p.name != "__init__.py" or p.parent != SRC}
    assert units <= set(LAYERS), f"place these in LAYERS and in docs/design.md: {units - set(LAYERS)}"


def test_imports_flow_one_way():
    bad = []
    for path in SRC.rglob("*.py"):
        if path.parent == SRC and path.name == "__init__.py":
            continue
        me = _unit(path)
        for target in _targets(path) - {me}:
            if target in LAYERS and LAYERS.index(target) > LAYERS.index(me):
                bad.append(f"{path.relative_to(SRC)} imports {target}")
    assert not bad, "imports against the flow:\n" + "\n".join(sorted(bad))


def test_the_checker_sees_relative_absolute_and_nested_imports():
    assert targets("from ..loop import run", ("tasks",)) == {"loop"}
    assert targets("from .io import x", ("tasks",)) == {"tasks"}
    assert targets("from .config import C", ()) == {"config"}
    assert targets("def f():\n    import secondtry.report.tables", ("toy",)) == {"report"}
    assert targets("from secondtry import cli", ()) == {"cli"}
