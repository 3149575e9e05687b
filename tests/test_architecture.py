"""The package's shape: no import cycle, the layers respected, small modules, a face per package.

Every ``import`` of a cmtoolkit module is read with ``ast`` from the source (at module level, inside
functions and under ``if TYPE_CHECKING:`` alike; relative imports resolved), so an import hidden in
a function counts as much as one at the top. A failure lists each offending import with its file
and line, and says what to change.
"""

from __future__ import annotations

import ast
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "cmtoolkit"
MAX_LINES = 500

# The layers (DESIGN §11 and docs/): each unit (a top-level module or subpackage of cmtoolkit)
# with the units it sits directly on; it may import those and, transitively, what they sit on.
# Anything else is a higher or a sideways layer and must not be imported.
SITS_ON: dict[str, set[str]] = {
    "errors": set(),
    "secret": set(),
    "people": {"errors"},
    "campaign_monitor": {"errors", "secret", "people"},
    "emulator": {"campaign_monitor"},
    "profiles": {"errors", "secret", "people"},
    "credentials": {"errors", "secret", "campaign_monitor"},
    "connection": {"credentials", "campaign_monitor", "profiles"},
    "sync": {"connection"},
    "workspace": {"sync"},
    "cmtoolkit": {"workspace"},  # the package's own face (cmtoolkit/__init__.py)
    "widgets": {"cmtoolkit"},
    "batch": {"widgets"},
    "demo": {"batch", "emulator"},
    "cli": {"demo"},
    "__main__": {"cli"},
}


def allowed(unit: str) -> set[str]:
    """Every unit below ``unit``."""
    seen: set[str] = set()
    todo = list(SITS_ON.get(unit, ()))
    while todo:
        below = todo.pop()
        if below not in seen:
            seen.add(below)
            todo.extend(SITS_ON.get(below, ()))
    return seen


@dataclass(frozen=True)
class Import:
    source: str  # importing module, e.g. "cmtoolkit.sync.runner"
    target: str  # imported module (a package means its __init__.py)
    where: str  # file:line, the file relative to the repository


def module_names(package: Path) -> dict[str, Path]:
    """``cmtoolkit.x.y`` -> its file; a package is its ``__init__.py``."""
    names = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


MODULES = module_names(PACKAGE)


def unit_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "cmtoolkit"


def imports_of(module: str, modules: dict[str, Path]) -> Iterator[Import]:
    """The package's own modules that ``module`` imports, wherever the import statement is."""
    top = next(iter(modules)).split(".")[0]
    path = modules[module]
    relative = path.relative_to(modules[top].parent.parent).as_posix()
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if not isinstance(node, ast.Import | ast.ImportFrom):
            continue
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            # `from pkg import name`: the submodule pkg.name if there is one, else pkg's face
            names = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names
            ]
        for name in names:
            if name == top or name.startswith(top + "."):
                while name not in modules and "." in name:  # a.b.func -> a.b
                    name = name.rsplit(".", 1)[0]
                yield Import(module, name, f"{relative}:{node.lineno}")


def all_imports(modules: dict[str, Path] = MODULES) -> list[Import]:
    return list(dict.fromkeys(imp for module in modules for imp in imports_of(module, modules)))


def cycles(edges: dict[str, dict[str, Import]]) -> list[list[str]]:
    """One cycle through each strongly connected group of modules (Tarjan): a -> ... -> a."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(edges.get(node, {})):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1 or node in edges.get(node, {}):
                groups.append(group)

    for node in sorted(edges):
        if node not in index:
            visit(node)

    found = []
    for group in groups:
        start = min(group)
        # breadth-first inside the group for the shortest way back to start
        back: dict[str, str] = {}
        frontier = [start]
        while frontier and start not in back:
            nxt = []
            for node in frontier:
                for succ in sorted(edges.get(node, {})):
                    if succ in group and succ not in back:
                        back[succ] = node
                        nxt.append(succ)
            frontier = nxt
        path = [start]
        node = back[start]
        while node != start:
            path.append(node)
            node = back[node]
        path.append(start)
        found.append(path[::-1])
    return found


def graph(modules: dict[str, Path] = MODULES) -> dict[str, dict[str, Import]]:
    edges: dict[str, dict[str, Import]] = {}
    for imp in all_imports(modules):
        if imp.target != imp.source:
            edges.setdefault(imp.source, {}).setdefault(imp.target, imp)
    return edges


def test_the_walk_sees_hidden_relative_and_from_imports(tmp_path: Path) -> None:
    """The walker itself, on a small package with a cycle hidden inside a function."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "from pkg.a import thing\n",
        "a.py": "from . import b\nthing = 1\n",
        "b.py": "import os\nfrom .sub import c\n",
        "sub/__init__.py": "",
        "sub/c.py": "def late():\n    from ..a import thing\n    return thing\n",
        "d.py": "from pkg import sub\nfrom pkg.sub.c import late\n",
    }
    for name, text in files.items():
        (pkg / name).write_text(text)
    modules = module_names(pkg)
    edges = graph(modules)
    assert {source: sorted(targets) for source, targets in edges.items()} == {
        "pkg": ["pkg.a"],
        "pkg.a": ["pkg.b"],
        "pkg.b": ["pkg.sub.c"],
        "pkg.sub.c": ["pkg.a"],
        "pkg.d": ["pkg.sub", "pkg.sub.c"],
    }
    assert edges["pkg.sub.c"]["pkg.a"].where == "pkg/sub/c.py:2"
    assert cycles(edges) == [["pkg.a", "pkg.b", "pkg.sub.c", "pkg.a"]]
    assert cycles({"x": edges["pkg"]}) == []


def test_no_import_cycle() -> None:
    edges = graph()
    found = cycles(edges)
    report = []
    for path in found:
        steps = [f"    {a} imports {b}  ({edges[a][b].where})" for a, b in itertools.pairwise(path)]
        report.append(" -> ".join(path) + "\n" + "\n".join(steps))
    assert not found, (
        "import cycles among cmtoolkit's modules (break each by moving the shared code down to "
        "one module both can use, or import a sibling directly, not through its package's "
        "__init__; one cycle is shown per tangled group, fixing it may reveal the next):\n"
        + "\n".join(report)
    )


def test_lower_layers_never_import_higher_ones() -> None:
    unknown = sorted({unit_of(m) for m in MODULES} - set(SITS_ON))
    assert not unknown, (
        f"cmtoolkit units with no place in the layers: {unknown}; add each to SITS_ON in "
        "tests/test_architecture.py (and to the architecture page in docs/)"
    )
    wrong = []
    for imp in all_imports():
        source, target = unit_of(imp.source), unit_of(imp.target)
        if source != target and target not in allowed(source):
            place = "above" if source in allowed(target) else "beside"
            wrong.append(
                f"  {imp.where}: {imp.source} imports {imp.target}, but {target} is {place} "
                f"{source} in the layers"
            )
    assert not wrong, (
        "imports against the layering (move the code down to a layer both can use, or pass the "
        "higher object in as a parameter):\n" + "\n".join(wrong)
    )


OUTSIDE = re.compile(r"""\.\./shared|shared/fixtures|["']shared["']|/work/""")


def test_tests_read_nothing_outside_the_repository() -> None:
    """A fresh clone alone must pass: samples live in tests/fixtures (the cm_samples fixture)."""
    here = Path(__file__).resolve()
    wrong = [
        f"  {path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in sorted((ROOT / "tests").rglob("*"))
        if path.suffix in {".py", ".ipynb", ".yaml", ".yml", ".cfg", ".toml"} and path != here
        for number, line in enumerate(path.read_text("utf-8", "replace").splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert not wrong, (
        "tests that reach outside the repository (copy the file into tests/fixtures/ and read it "
        "through the cm_samples fixture of tests/conftest.py):\n" + "\n".join(wrong)
    )


def test_no_module_over_500_lines() -> None:
    sizes = {
        str(path.relative_to(ROOT)): len(path.read_text(encoding="utf-8").splitlines())
        for path in MODULES.values()
    }
    over = {name: n for name, n in sorted(sizes.items()) if n > MAX_LINES}
    assert not over, f"modules over {MAX_LINES} lines (split each by concept): " + ", ".join(
        f"{name} ({n} lines)" for name, n in over.items()
    )


def test_no_package_imports_the_cli() -> None:
    wrong = [
        f"  {imp.where}: {imp.source} imports {imp.target}"
        for imp in all_imports()
        if unit_of(imp.target) == "cli" and unit_of(imp.source) not in {"cli", "__main__"}
    ]
    assert not wrong, (
        "only cmtoolkit.cli (and cmtoolkit/__main__.py) may import cmtoolkit.cli; move the shared "
        "helper below the CLI (the CLI calls the package, never the other way round):\n"
        + "\n".join(wrong)
    )


def bound_names(tree: ast.Module) -> set[str]:
    """Names a module binds at its top level (also inside top-level if/try blocks), and the names
    its module-level ``__getattr__`` hands out lazily."""
    names: set[str] = set()
    todo: list[ast.stmt] = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
            if node.name == "__getattr__":
                names.update(
                    n.value
                    for n in ast.walk(node)
                    if isinstance(n, ast.Constant) and isinstance(n.value, str)
                )
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, ast.If | ast.Try):
            todo.extend(node.body + node.orelse)
            if isinstance(node, ast.Try):
                todo.extend(node.finalbody)
                for handler in node.handlers:
                    todo.extend(handler.body)
    return names


def test_every_package_has_a_face_with_all() -> None:
    problems = []
    for module, path in MODULES.items():
        if path.name != "__init__.py":
            continue
        where = path.relative_to(ROOT)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        declared = None
        for node in tree.body:
            if isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
                    declared = node.value
        if declared is None:
            problems.append(f"  {where}: no __all__; list the names the package offers")
            continue
        try:
            names = ast.literal_eval(declared)
        except ValueError:
            problems.append(f"  {where}: __all__ must be a literal list of strings")
            continue
        missing = sorted(set(names) - bound_names(tree))
        if missing:
            problems.append(f"  {where}: __all__ names {missing}, which {module} does not define")
    assert not problems, "package faces:\n" + "\n".join(problems)
