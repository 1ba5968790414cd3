"""ppir has no import cycles, counting function-level imports too (a lazy import that only dodges a cycle is
still a cycle a reader has to keep in mind), and the export/infer direction holds: ppir.export depends on the
inference.yml contract in ppir.infer.deploy_info, never the reverse."""
from __future__ import annotations

import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def module_files(package_dir: str) -> dict[str, str]:
    """Dotted module name -> file, for every .py file under `package_dir` (its parent is the import root)."""
    base = os.path.dirname(package_dir)
    mods = {}
    for folder, _, files in os.walk(package_dir):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(folder, f)
                name = os.path.relpath(path, base)[:-3].replace(os.sep, ".")
                mods[name[:-len(".__init__")] if name.endswith(".__init__") else name] = path
    return mods


def import_graph(package_dir: str) -> dict[str, set[str]]:
    """Module -> the package's modules it imports anywhere in its file (module level or inside functions).
    The packages a module sits in are not counted (Python runs their __init__ before the module anyway)."""
    mods = module_files(package_dir)
    top = os.path.basename(package_dir)
    graph = {}
    for name, path in mods.items():
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
        deps = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = package.split(".")
                    parts = parts[:len(parts) - node.level + 1]
                    target = ".".join(parts + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                candidates = [target] + [f"{target}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                candidates = [a.name for a in node.names]
            else:
                continue
            deps.update(c for c in candidates if c in mods and c.split(".")[0] == top
                        and not (name == c or name.startswith(c + ".")))  # itself or a package it is in
        graph[name] = deps
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as [a, b, ..., a], or None (depth-first search with colours)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_checker_finds_lazy_cycles(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .sub import b\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from ..a import x\n")  # only inside a function
    (pkg / "c.py").write_text("from pkg import a\n")
    graph = import_graph(str(pkg))
    assert graph["pkg.a"] == {"pkg.sub", "pkg.sub.b"}  # the package runs too: it counts
    assert graph["pkg.sub.b"] == {"pkg.a"} and graph["pkg.c"] == {"pkg.a"}  # the enclosing package does not
    assert find_cycle(graph) == ["pkg.a", "pkg.sub.b", "pkg.a"]
    (pkg / "sub" / "b.py").write_text("import os\n")
    assert find_cycle(import_graph(str(pkg))) is None


def test_ppir_has_no_import_cycles():
    graph = import_graph(os.path.join(ROOT, "ppir"))
    assert len(graph) > 50 and "ppir.infer.deploy_info" in graph
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_infer_and_serving_never_import_export():
    graph = import_graph(os.path.join(ROOT, "ppir"))
    importers = sorted(m for m, deps in graph.items() if "ppir.export" in deps
                       and m.startswith(("ppir.infer", "ppir.serving", "ppir.quant")))
    assert importers == []
    assert "ppir.infer.deploy_info" in graph["ppir.export"]


def test_the_library_never_imports_the_command_line():
    """Parsers live in ppir/commands/ (and ppir/cli.py's helpers); the library takes settings, so nothing else
    imports either (ppir/__main__.py dispatches to the commands)."""
    graph = import_graph(os.path.join(ROOT, "ppir"))
    cli = {m for m in graph if m == "ppir.cli" or m.startswith("ppir.commands")}
    importers = sorted(m for m, deps in graph.items() if deps & cli and m not in cli and m != "ppir.__main__")
    assert importers == []
