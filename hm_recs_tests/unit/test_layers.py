"""The layers of docs/architecture.md, read from the source: what each package may import (lazy imports inside
functions included) and no import circle between modules."""

import ast
from pathlib import Path

import pytest

import hm_recs

PACKAGE = Path(hm_recs.__file__).resolve().parent

# layer -> the hm_recs layers its modules may import (docs/architecture.md, "Layers and what each may import")
ALLOWED = {
    "settings": {"settings"},
    "storage.pure": {"storage.pure"},
    "core": {"core", "storage.pure"},
    "models": {"core", "models", "storage.pure"},
    "storage": {"core", "storage", "storage.pure", "settings"},
    "platform": {"core", "storage", "storage.pure", "platform", "settings"},
    "assets": {"core", "models", "storage", "storage.pure", "platform", "assets", "settings"},
    "location": {"core", "models", "storage", "storage.pure", "platform", "assets", "location", "settings"},
    "command": {
        "core",
        "models",
        "storage",
        "storage.pure",
        "platform",
        "assets",
        "location",
        "command",
        "synthetic",
        "settings",
    },
    "synthetic": {"core", "storage.pure", "synthetic"},
}
PURE_STORAGE = {"hm_recs.storage.location", "hm_recs.storage.staged", "hm_recs.storage.encoding"}
PLATFORM = {
    "hm_recs.resources",
    "hm_recs.registry",
    "hm_recs.configs",
    "hm_recs.partitions",
    "hm_recs.deploy",
    "hm_recs.observability",
}
LOCATION = {"hm_recs.definitions", "hm_recs.sensors", "hm_recs.fallback"}
COMMAND = {"hm_recs.cli", "hm_recs.runner"}


def layer(module: str) -> str:
    if module == "hm_recs.settings":
        return "settings"
    if module in PURE_STORAGE:
        return "storage.pure"
    if module in PLATFORM:
        return "platform"
    if module in LOCATION:
        return "location"
    if module in COMMAND:
        return "command"
    part = module.split(".")[1] if module.count(".") else ""
    return part if part in ALLOWED else "platform"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every hm_recs module `path` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("hm_recs")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hm_recs"):
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(
                    candidate
                    if (PACKAGE.parent / (candidate.replace(".", "/") + ".py")).exists()
                    or (PACKAGE.parent / candidate.replace(".", "/")).is_dir()
                    else node.module
                )
    return found


GRAPH = {module_name(p): imports(p) for p in PACKAGE.rglob("*.py")}


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_follow_the_layers(module):
    wrong = sorted(m for m in GRAPH[module] if layer(m) not in ALLOWED[layer(module)] and m != "hm_recs")
    assert not wrong, (
        f"{module} ({layer(module)}) imports {wrong}: docs/architecture.md says what each layer may import"
    )


def test_no_import_circle():
    def visit(module, path, seen):
        for target in sorted(GRAPH.get(module, ())):
            target = target if target in GRAPH else target.rsplit(".", 1)[0]
            if target in path:
                raise AssertionError(" -> ".join([*path[path.index(target) :], target]))
            if target not in seen and target in GRAPH:
                seen.add(target)
                visit(target, [*path, target], seen)

    for module in sorted(GRAPH):
        visit(module, [module], {module})
