"""Packages import downwards only, and inference never imports training code (parsed, not executed)."""

import ast
from collections import defaultdict
from pathlib import Path

import charforge

ROOT = Path(charforge.__file__).resolve().parent
# inference: what runs a trained model (generate, studio, export, tagging); none of it may reach charforge.train
INFERENCE = (
    "core",
    "creators",
    "models",
    "tagger",
    "sampling",
    "sr",
    "export",
    "serve",
    "provenance",
    "hub",
    "gradio_app",
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every charforge module `path` imports, at module level or inside functions (lazy imports count)."""
    mod = _module_name(path)
    pkg = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.add(target)
            out |= {f"{target}.{a.name}" for a in node.names}  # `from charforge.train import loop`
    return {m for m in out if m == "charforge" or m.startswith("charforge.")}


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in ROOT.rglob("*.py")}


def _top(mod: str) -> str:
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else ""


def _cycles(graph: dict[str, set[str]]) -> list[str]:
    edges: dict[str, set[str]] = defaultdict(set)
    for mod, deps in graph.items():
        for d in deps:
            a, b = _top(mod), _top(d)
            if a and b and a != b and a != "__main__":
                edges[a].add(b)
    cycles = []

    def visit(node, path):
        for nxt in sorted(edges.get(node, ())):
            if nxt in path:
                cycles.append(" -> ".join(path[path.index(nxt) :] + [nxt]))
            elif len(path) < 12:
                visit(nxt, path + [nxt])

    for start in sorted(edges):
        visit(start, [start])
    return sorted(set(cycles))


def _training_reach(graph: dict[str, set[str]]) -> list[str]:
    modules = set(graph)

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    offenders = []
    for mod in sorted(graph):
        if _top(mod) not in INFERENCE:
            continue
        seen, stack = {mod}, [mod]
        while stack:
            cur = stack.pop()
            for dep in graph.get(cur, ()):
                target = resolve(dep)
                if target is None or target in seen:
                    continue
                if _top(target) == "train":
                    offenders.append(f"{mod} reaches {target} (via {cur})")
                    continue
                seen.add(target)
                stack.append(target)
    return offenders


def test_no_cycle_between_top_level_packages():
    cycles = _cycles(_graph())
    assert not cycles, "package import cycles:\n" + "\n".join(cycles)


def test_inference_never_imports_training_code():
    offenders = _training_reach(_graph())
    assert not offenders, "inference code importing training code:\n" + "\n".join(offenders)


def test_the_checkers_catch_planted_violations():
    """Both checks must be able to fail: plant core -> train (a cycle, since train imports core) and
    sampling -> models -> train (inference reaching training through a lazy import)."""
    graph = _graph()
    assert not _cycles(graph)
    planted = {**graph, "charforge.core.planted": {"charforge.train.loop"}}
    assert any("core -> train -> core" in c or "train -> core -> train" in c for c in _cycles(planted))
    planted = {**graph, "charforge.models.planted": {"charforge.train.gan"}}
    graph_sampling = set(planted["charforge.sampling"]) | {"charforge.models.planted"}
    planted["charforge.sampling"] = graph_sampling
    assert any(o.startswith("charforge.sampling reaches charforge.train") for o in _training_reach(planted))


def test_the_cli_starts_without_torch():
    """`charforge --help` and argument errors stay fast: heavy libraries load inside the commands that use them."""
    import subprocess
    import sys

    code = "import sys, charforge.cli; print(sorted(m for m in ('torch', 'onnxruntime', 'fastapi', 'dlib') if m in sys.modules))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "[]", r.stdout
