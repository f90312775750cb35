"""The package layout by method: shared layers never import a method, a method never imports another one, no import cycles.

The import graph is read from the exported sources with `ast` (function-local imports included), so it needs no import."""
import ast
from pathlib import Path
import pytest
from conftest import ROOT

PKG = ROOT / "spine_nb"
SHARED = ("core", "data", "anatomy", "transforms", "networks", "losses", "training", "inference", "evaluation", "viz")
TOP = ("cli", "__init__", "_modidx")  # the front door: the command table and the lazy top-level API name every layer


def module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    "Every spine_nb module `path` imports, anywhere in the file (relative imports resolved)."
    name = module_name(path); pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import): mods = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            mods = [base] + [f"{base}.{a.name}" for a in node.names]
        else: continue
        out |= {m for m in mods if m.split(".")[0] == "spine_nb"}
    real = {module_name(p) for p in PKG.rglob("*.py")}
    return {m for m in out if m in real and m != name}


def graph() -> dict[str, set[str]]:
    return {module_name(p): imported_modules(p) for p in PKG.rglob("*.py")}


def layer(mod: str) -> tuple[str, str]:
    "('shared', layer), ('method', name) or ('top', name) of a module."
    parts = mod.split(".")[1:] or ["__init__"]
    if parts[0] == "methods": return ("method", parts[1]) if len(parts) > 1 else ("top", "methods")
    if parts[0] in SHARED: return ("shared", parts[0])
    if parts[0] in TOP: return ("top", parts[0])
    raise AssertionError(f"{mod} belongs to no layer: put it under a shared layer {SHARED} or under spine_nb/methods/<name>/")


def test_every_module_has_a_layer():
    for m in graph(): layer(m)


def test_shared_layers_never_import_a_method():
    bad = [(m, d) for m, deps in graph().items() for d in deps if layer(m)[0] == "shared" and layer(d)[0] != "shared" and d != "spine_nb"]
    assert not bad, f"shared layers import methods or the front door: {bad}"


def test_methods_never_import_another_method():
    bad = [(m, d) for m, deps in graph().items() for d in deps
           if layer(m)[0] == "method" and layer(d)[0] == "method" and layer(d)[1] != layer(m)[1]]
    assert not bad, f"methods import other methods: {bad}"
    top = [(m, d) for m, deps in graph().items() for d in deps if layer(m)[0] == "method" and layer(d)[0] == "top" and d != "spine_nb"]
    assert not top, f"methods import the command line: {top}"


def test_no_import_cycles():
    g = {m: {d for d in deps if d != "spine_nb"} for m, deps in graph().items()}  # the package facade imports lazily
    state, stack, cycles = {}, [], []
    def visit(m):
        state[m] = 1; stack.append(m)
        for d in sorted(g.get(m, ())):
            # importing a module imports its parent packages, which are empty or lazy here
            if state.get(d) == 1: cycles.append(stack[stack.index(d):] + [d])
            elif d not in state: visit(d)
        stack.pop(); state[m] = 2
    for m in sorted(g):
        if m not in state: visit(m)
    assert not cycles, f"import cycles: {cycles[:3]}"


def test_the_checker_sees_function_local_and_relative_imports(tmp_path):
    p = PKG / "anatomy.py"
    deps = imported_modules(p)
    assert "spine_nb.core" in deps  # `from spine_nb.core import …` (relative after export)
    src = (PKG / "methods" / "payer" / "plan.py").read_text(encoding="utf-8")
    assert "    from spine_nb.networks import build_network" in src
    assert "spine_nb.networks" in imported_modules(PKG / "methods" / "payer" / "plan.py")  # imported inside a function


@pytest.mark.parametrize("shim", ["phantom", "train", "infer", "bench", "evaluate", "info", "convert_dicom", "demo", "cv"])
def test_no_command_shim_modules(shim):
    "`python -m spine_nb.<command>` is served by `spine_nb.CommandModules`, not by a module file per command."
    assert not (PKG / f"{shim}.py").exists()
