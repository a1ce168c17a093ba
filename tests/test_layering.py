"""The package's layering, read from its source with ``ast``: no import cycles, no private
names crossing modules.

Every ``import`` and ``from ... import`` counts, at module level or inside a function (a
deferred import hides a cycle, it does not remove it), except those under
``if TYPE_CHECKING:``, which never run. A name is private when it starts with one
underscore; a private module (``bigpaint/stats/_x.py``) may be imported by the modules of
its own package only.
"""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import bigpaint

ROOT = Path(bigpaint.__file__).parent


@dataclass(frozen=True)
class Import:
    """One imported module (and the name taken from it, for ``from`` imports)."""

    module: str
    target: str
    name: str | None
    line: int
    attribute: bool = False


def _modules(root: Path, package: str) -> dict[str, Path]:
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _type_checking_only(tree: ast.AST) -> set[int]:
    """ids of the nodes under ``if TYPE_CHECKING:`` (its body, not its else)."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", None)
            if name == "TYPE_CHECKING":
                skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return skip


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(modules: dict[str, Path], package: str) -> Iterator[Import]:
    """Every runtime import of a package module by a package module, with private
    attribute uses (``alias._name``) reported as imports of that name."""
    for module, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        skip = _type_checking_only(tree)
        aliases: dict[str, str] = {}
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.split(".")[0] == package:
                        # "import pkg.x as m" binds m to pkg.x; "import pkg.x" binds pkg
                        if a.asname:
                            aliases[a.asname] = a.name
                        else:
                            aliases[package] = package
                        yield Import(module, a.name, None, node.lineno)
            elif isinstance(node, ast.ImportFrom):
                source = _resolve(module, is_package, node)
                if source.split(".")[0] != package:
                    continue
                for a in node.names:
                    sub = f"{source}.{a.name}"
                    if sub in modules:
                        aliases[a.asname or a.name] = sub
                        yield Import(module, sub, None, node.lineno)
                    else:
                        yield Import(module, source, a.name, node.lineno)
        for node in ast.walk(tree):
            if id(node) in skip or not isinstance(node, ast.Attribute):
                continue
            chain, value = [], node.value
            while isinstance(value, ast.Attribute):
                chain.append(value.attr)
                value = value.value
            if isinstance(value, ast.Name) and value.id in aliases:
                target = ".".join([aliases[value.id], *reversed(chain)])
                if target in modules and _is_private(node.attr):
                    yield Import(module, target, node.attr, node.lineno, attribute=True)


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Module to the package modules it imports (the module a name comes from, or the
    submodule imported)."""
    modules = _modules(root, package)
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for imp in _imports(modules, package):
        if imp.target in modules and imp.target != imp.module:
            graph[imp.module].add(imp.target)
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def private_imports(root: Path, package: str) -> list[str]:
    """``module:line imports target.name`` for every private name taken from another
    module, and every private module imported from outside its package."""
    modules = _modules(root, package)
    bad = []
    for imp in _imports(modules, package):
        if imp.name is not None and _is_private(imp.name) and imp.target != imp.module:
            bad.append(f"{imp.module}:{imp.line} imports {imp.target}.{imp.name}")
        parts = [] if imp.attribute else imp.target.split(".")
        for depth, part in enumerate(parts[1:], start=1):
            owner = ".".join(parts[:depth])
            inside = imp.module == owner or imp.module.startswith(owner + ".")
            if _is_private(part) and not inside:
                bad.append(f"{imp.module}:{imp.line} imports the private module {imp.target}")
                break
    return sorted(set(bad))


def test_bigpaint_has_no_import_cycle():
    cycles = import_cycles(import_graph(ROOT, "bigpaint"))
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_no_bigpaint_module_imports_another_modules_private_name():
    bad = private_imports(ROOT, "bigpaint")
    assert not bad, "\n".join(bad)


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "pkg"
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def test_the_checks_see_deferred_cycles_and_private_names_but_not_type_checking(tmp_path):
    root = _package(
        tmp_path,
        {
            "__init__.py": "from pkg.a import f\n",
            "a.py": "from pkg.b import g\n\ndef f():\n    return g()\n",
            "b.py": "def g():\n    from pkg import a\n    return a._hidden\n",
            "c.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from pkg.d import _Thing\n"
                "else:\n    from pkg.sub import _helper\n"
            ),
            "d.py": "from pkg.c import *\n_Thing = int\n",
            "sub/__init__.py": "from pkg.sub._impl import _helper\n",
            "sub/_impl.py": "def _helper():\n    return 1\n",
            "e.py": "import pkg.sub._impl as impl\n\nx = impl.value\n",
        },
    )
    cycles = import_cycles(import_graph(root, "pkg"))
    assert cycles == [["pkg.a", "pkg.b"]]
    assert private_imports(root, "pkg") == [
        "pkg.b:3 imports pkg.a._hidden",
        "pkg.c:5 imports pkg.sub._helper",
        "pkg.e:1 imports the private module pkg.sub._impl",
        "pkg.sub:1 imports pkg.sub._impl._helper",
    ]


# ---------------------------------------------------------------- the chunked core's monopolies


def names_used(root: Path, package: str, name: str) -> dict[str, list[int]]:
    """Module to the lines where it names ``name``: a module imported (``dask._task_spec``,
    or anything below it), or an identifier, attribute or imported name (``_current_client``).
    Strings and comments do not count."""
    out: dict[str, list[int]] = {}
    for module, path in _modules(root, package).items():
        lines = []
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            found: list[str] = []
            if isinstance(node, ast.Import):
                found = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                found = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
                found += [a.name for a in node.names]
            elif isinstance(node, ast.Name):
                found = [node.id]
            elif isinstance(node, ast.Attribute):
                found = [node.attr, _dotted(node)]
            if any(f == name or f.startswith(name + ".") for f in found):
                lines.append(node.lineno)
        if lines:
            out[module] = sorted(set(lines))
    return out


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def test_dask_internals_and_the_private_client_are_named_in_one_module_each():
    spec = names_used(ROOT, "bigpaint", "dask._task_spec")
    assert set(spec) == {"bigpaint.chunked.graph"}, spec
    client = names_used(ROOT, "bigpaint", "_current_client")
    assert set(client) <= {"bigpaint.chunked.client"}, client


def test_the_name_check_sees_imports_and_attributes_only(tmp_path):
    root = _package(
        tmp_path,
        {
            "__init__.py": "",
            "a.py": "from dask._task_spec import Task\n",
            "b.py": "import dask._task_spec as ts\n",
            "c.py": "import dask\n\nx = dask._task_spec.Task\n",
            "d.py": "# dask._task_spec\ns = 'dask._task_spec'\n",
            "e.py": "from distributed.client import _current_client\n",
            "f.py": "def _current_client():\n    return None\n\ny = _current_client()\n",
        },
    )
    assert names_used(root, "pkg", "dask._task_spec") == {
        "pkg.a": [1],
        "pkg.b": [1],
        "pkg.c": [3],
    }
    assert names_used(root, "pkg", "_current_client") == {"pkg.e": [1], "pkg.f": [4]}


# ---------------------------------------------------------------- sizes


#: Largest module of the segmentation package, lines.
SEGMENT_MAX_LINES = 400


def test_no_segmentation_module_is_over_400_lines():
    long = {
        str(p.relative_to(ROOT)): n
        for p in sorted((ROOT / "segment").rglob("*.py"))
        if (n := len(p.read_text().splitlines())) > SEGMENT_MAX_LINES
    }
    assert not long, f"modules of bigpaint/segment over {SEGMENT_MAX_LINES} lines: {long}"


#: Largest module of the package and largest function, lines (a function's def to its end).
MODULE_MAX_LINES = 600
FUNCTION_MAX_LINES = 120


def test_no_module_is_over_600_lines_and_no_function_over_120():
    modules, functions = {}, {}
    for p in sorted(ROOT.rglob("*.py")):
        text = p.read_text()
        name = str(p.relative_to(ROOT))
        if (n := len(text.splitlines())) > MODULE_MAX_LINES:
            modules[name] = n
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > FUNCTION_MAX_LINES:
                    functions[f"{name}:{node.name}"] = length
    assert not modules, f"modules over {MODULE_MAX_LINES} lines: {modules}"
    assert not functions, f"functions over {FUNCTION_MAX_LINES} lines: {functions}"
