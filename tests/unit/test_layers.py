"""The package's shape, read from its source (docs/architecture.md, "Layers"): each module
imports only from its own layer or those below, nothing imports in a circle, the top of
``webapp/`` stays small, no code picks a lab host backend by its name, and no service is
rewired after the composition root (webapp/app.py) built it."""
from __future__ import annotations

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[2] / "webapp"

# Lowest first. A module belongs to the longest prefix listed; it may import its own layer and those below.
LAYERS = [
    ["webapp.errors", "webapp.config", "webapp.status"],
    ["webapp.labhost"],
    ["webapp.executor", "webapp.lab", "webapp.network", "webapp.images"],
    ["webapp.store", "webapp.guard"],
    ["webapp.learners"],
    ["webapp.stream", "webapp.runs", "webapp.shells", "webapp.cluster"],
    ["webapp.workshop", "webapp.notebook", "webapp.network.views", "webapp.proxy", "webapp.web"],
    ["webapp.app", "webapp"],
    ["webapp.commands"],
]
# The lab host's own programs run inside it, not in the server: they import nothing of webapp.
OUTSIDE = "webapp.labhost.scripts"
LOOSE_MOST = 5
# Names the composition root binds services to: nothing else assigns their attributes.
SERVICE_NAMES = {"services", "settings", "guard", "events", "learners", "shells", "runs", "pool", "store",
                 "workshop", "gateway", "pictures", "socketio", "admission"}


def _modules() -> dict[str, pathlib.Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(name: str, path: pathlib.Path) -> set[str]:
    """The webapp modules ``name`` imports, anywhere in it (a function's import or a TYPE_CHECKING one too)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            candidates = [f"{target}.{alias.name}" if f"{target}.{alias.name}" in MODULES else target
                          for alias in node.names]
        elif isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            continue
        for candidate in candidates:
            while candidate and candidate not in MODULES:
                candidate = candidate.rpartition(".")[0]
            if candidate and candidate != name:
                found.add(candidate)
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def layer(name: str) -> int:
    best, level = "", None
    for i, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > len(best):
                best, level = prefix, i
    assert level is not None, f"{name} is in no layer: add it to LAYERS in {__file__}"
    return level


@pytest.mark.parametrize("name", sorted(n for n in MODULES if not n.startswith(OUTSIDE)))
def test_no_upward_import(name):
    upward = sorted(t for t in GRAPH[name] if layer(t) > layer(name))
    assert not upward, f"{name} (layer {layer(name)}) imports from above it: {upward}"


def test_the_lab_hosts_programs_import_nothing_of_the_server():
    inside = {n: sorted(GRAPH[n]) for n in MODULES if n.startswith(OUTSIDE) and GRAPH[n]}
    assert not inside


def test_no_circle():
    """Tarjan's strongly connected components: any with two or more modules is a circle."""
    index, low, on, stack, circles, counter = {}, {}, set(), [], [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    # a package's __init__ re-exporting its own modules is not a circle of code
    for name in sorted(GRAPH):
        GRAPH[name] = {t for t in GRAPH[name] if not (MODULES[name].name == "__init__.py"
                                                       and t.startswith(name + "."))}
    for name in sorted(GRAPH):
        if name not in index:
            visit(name)
    assert not circles


def test_few_loose_modules():
    loose = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(loose) <= LOOSE_MOST, f"webapp/ has {len(loose)} loose modules: {loose}; put them in a package"


def test_no_backend_named_in_code():
    """Backends are found in webapp/labhost/backends.py by their properties, never by a string test."""
    offenders = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare) and "backend" in ast.unparse(node.left):
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {ast.unparse(node)}")
    assert not offenders, "\n".join(offenders)


def test_no_service_rewired_after_construction():
    """``x.attr = ...`` where x is a service's name (not ``self``), or a hook (``on_...``) of any object
    but ``self``, rewires a built object: only the composition root may, and it builds instead."""
    offenders = []
    for name, path in MODULES.items():
        if name in ("webapp.app",):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            targets = node.targets if isinstance(node, ast.Assign) else (
                [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else [])
            for target in targets:
                for t in (target.elts if isinstance(target, ast.Tuple) else [target]):
                    chain = t
                    while isinstance(chain, ast.Attribute):
                        chain = chain.value
                    if not isinstance(t, ast.Attribute) or not isinstance(chain, ast.Name):
                        continue
                    hook = t.attr.startswith("on_") and not (isinstance(t.value, ast.Name) and t.value.id == "self")
                    if (hook or chain.id in SERVICE_NAMES or (isinstance(t.value, ast.Attribute)
                                                              and t.value.attr in SERVICE_NAMES)):
                        offenders.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {ast.unparse(t)}")
    assert not offenders, "\n".join(offenders)
