"""The project's import graph, read from the source (every ``import`` statement, at module level and
inside functions): ``python tests/import_graph.py`` prints the package-level graph and any import
that goes against the layers ``toyworld -> distill -> eval -> report/sweeps/CLI``, and any import
cycle between modules."""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("toyworld", "distill", "eval", "sweeps", "distill_bench")
# the top layer inside eval: the report (and the commands above it) may import eval, never the reverse
TOP_MODULES = ("eval.report",)
# what each layer may import from the project (itself included); the report sits with sweeps and the CLI
ALLOWED = {"toyworld": {"toyworld"},
           "distill": {"toyworld", "distill"},
           "eval": {"toyworld", "distill", "eval"},
           "report": {"toyworld", "distill", "eval", "report"},
           "sweeps": {"toyworld", "distill", "eval", "report", "sweeps"},
           "distill_bench": {"toyworld", "distill", "eval", "report", "sweeps", "distill_bench"}}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer(module: str) -> str | None:
    """The layer of a project module (None for a library)."""
    if any(module == m or module.startswith(m + ".") for m in TOP_MODULES):
        return "report"
    top = module.split(".")[0]
    return top if top in PACKAGES else None


def imports(path: Path) -> list[tuple[int, str, bool]]:
    """``(line, imported module, at module level)`` of every import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    top_level = {id(n) for n in tree.body}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name, id(node) in top_level) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from .x import y / from . import y
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [f"{target}.{a.name}" for a in node.names] if not node.module else [target]
            out += [(node.lineno, n, id(node) in top_level) for n in names]
    return out


def sources() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def edges() -> list[tuple[str, int, str, str, bool]]:
    """``(file, line, importer module, imported module, at module level)`` for project imports."""
    out = []
    for p in sources():
        me = module_name(p)
        for line, target, top in imports(p):
            if layer(target) is not None:
                out.append((str(p.relative_to(ROOT)), line, me, target, top))
    return out


def violations() -> list[str]:
    bad = []
    for file, line, me, target, _ in edges():
        if layer(target) not in ALLOWED[layer(me)]:
            bad.append(f"{file}:{line}: {me} ({layer(me)}) imports {target} ({layer(target)})")
    return bad


def package_graph() -> dict[str, set[str]]:
    g: dict[str, set[str]] = defaultdict(set)
    for _, _, me, target, _ in edges():
        if layer(me) != layer(target):
            g[layer(me)].add(layer(target))
    return g


def module_edges() -> dict[str, set[str]]:
    """Project module -> the project modules it imports (module and function level; ``from p import
    m`` counts as importing the module ``p.m`` when there is one)."""
    known = {module_name(p) for p in sources()}
    graph: dict[str, set[str]] = defaultdict(set)
    for p in sources():
        me = module_name(p)
        tree = ast.parse(p.read_text(encoding="utf-8"), filename=str(p))
        package = me if p.name == "__init__.py" else me.rpartition(".")[0]
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([node.module] if node.module else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
            else:
                continue
            for t in targets:
                while t and t not in known:
                    t = t.rpartition(".")[0]
                if t and t != me:
                    graph[me].add(t)
    return graph


def cycles() -> list[list[str]]:
    """The import cycles between project modules (strongly connected components of more than one
    module, function-level imports included): a function-level import that hides a cycle shows here."""
    graph = module_edges()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def main() -> int:
    g = package_graph()
    print("package-level imports (module and function level):")
    for pkg in ("toyworld", "distill", "eval", "report", "sweeps", "distill_bench"):
        print(f"  {pkg:<14} -> {', '.join(sorted(g.get(pkg, ()))) or '(nothing of the project)'}")
    bad = violations()
    print(f"imports against the layers: {len(bad)}")
    for b in bad:
        print("  " + b)
    cyc = cycles()
    print(f"import cycles between modules: {len(cyc)}")
    for c in cyc:
        print("  " + " <-> ".join(c))
    return 1 if bad or cyc else 0


if __name__ == "__main__":
    raise SystemExit(main())
