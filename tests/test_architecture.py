"""The house rules of docs/architecture.md that a machine can check: packages import downwards, no
module imports another in a cycle (imports inside functions and the faces' lazy tables counted),
private names stay private, nothing in src imports a package face, and `import reszoo` stays light."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "reszoo"

# The packages of docs/architecture.md, bottom first. A module imports from its own package or below.
LAYERS: list[set[str]] = [
    {"_version", "errors", "utils"},
    {"models"},
    {"data"},
    {"weights"},
    {"train"},
    {"infer"},
    {"bench"},
    {"diagnosis"},
    {"cli", "__main__", ""},
]
# Imports that go up on purpose, with the reason.
UPWARD_ALLOWED = {
    # create_model(name, pretrained=True) and resnet56(pretrained=True): the one builder above both the
    # registry and the weights (timm's factory -> builder), entered only when weights are asked for.
    ("models._factory", "weights.pretrained"),
}
# The package faces: they offer names defined in their own package (reszoo's: in every package).
FACES = {"", "data", "train", "weights", "bench", "diagnosis"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1]) if parts[-1] == "__init__" else ".".join(parts)


MODULES = {_module_name(p): ast.parse(p.read_text()) for p in sorted(SRC.rglob("*.py"))}


def _package(module: str) -> str:
    return module.split(".")[0]


def _rank(module: str) -> int:
    for rank, layer in enumerate(LAYERS):
        if _package(module) in layer:
            return rank
    raise AssertionError(f"reszoo.{module} is in no package of tests/test_architecture.py (and docs/architecture.md)")


def _owner(dotted: str) -> str | None:
    """The reszoo module that ``reszoo.a.b.c`` (a module or a name in one) reaches."""
    inner = dotted.removeprefix("reszoo").lstrip(".")
    while inner not in MODULES:
        if not inner:
            return None if dotted != "reszoo" else ""
        inner = inner.rpartition(".")[0]
    return inner


def _imports(module: str) -> list[tuple[str, list[str], str]]:
    """(module reached, names imported, how) for every reszoo import, at any depth; `how` is 'import'
    or 'lazy face' (a face's table of name -> module, read through importlib)."""
    found = []
    for node in ast.walk(MODULES[module]):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "reszoo":
            for alias in node.names:  # `from reszoo.x import y`: y is a submodule, or a name of reszoo.x
                submodule = f"{node.module}.{alias.name}"
                if submodule.removeprefix("reszoo.") in MODULES:
                    found.append((_owner(submodule), [], "import"))
                else:
                    found.append((_owner(node.module), [alias.name], "import"))
        elif isinstance(node, ast.Import):
            found += [(_owner(a.name), [], "import") for a in node.names if a.name.split(".")[0] == "reszoo"]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("reszoo."):
            owner = _owner(node.value)
            if owner is not None and node.value.removeprefix("reszoo.") in MODULES:
                found.append((owner, [], "lazy face"))  # an importlib target named in a table
    return [(m, n, how) for m, n, how in found if m is not None and m != module]


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m))
def test_imports_point_down_and_stay_public(module):
    for target, names, how in _imports(module):
        private = [n for n in names if n.startswith("_") and n != "__version__"]
        assert not private, f"reszoo.{module} imports the private {target}.{private}"
        if target in FACES and how == "import" and _package(module) != target:
            pytest.fail(f"reszoo.{module} imports the package face reszoo.{target}; import the defining module")
        if (module, target) in UPWARD_ALLOWED or module == "":
            continue
        assert _rank(target) <= _rank(module), f"reszoo.{module} imports reszoo.{target}, a package above it"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m and m not in FACES))
def test_one_import_path_per_name_no_re_exports_outside_the_faces(module):
    tree = MODULES[module]
    defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    for node in tree.body:
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        defined |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    exported = next(
        (
            [e.value for e in n.value.elts]
            for n in tree.body
            if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "__all__"
        ),
        [],
    )
    assert not [n for n in exported if n not in defined], f"reszoo.{module} re-exports names it does not define"


def test_no_private_attribute_of_another_module_is_used():
    # `other._name` where `other` is an imported reszoo module.
    for module, tree in MODULES.items():
        aliases = {a.asname or a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
        aliases &= {m.split(".")[-1] for m in MODULES}
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
                assert not (node.attr.startswith("_") and not node.attr.startswith("__")), (
                    f"reszoo.{module} uses the private {node.value.id}.{node.attr}"
                )


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
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

    for v in graph:
        if v not in index:
            visit(v)
    return out


def import_graph() -> dict[str, set[str]]:
    """Module -> the modules it imports, at module level, inside functions and through the faces' tables;
    a package's face is not an edge of its own modules (importing reszoo.x.y runs reszoo.x first)."""
    return {m: {t for t, _, _ in _imports(m) if not (m.startswith(t + ".") or (t == "" and m))} for m in MODULES}


def test_no_import_cycles_counting_lazy_imports():
    assert _cycles(import_graph()) == []


def test_the_cycle_check_finds_a_cycle_through_a_function_level_import():
    graph = import_graph()
    graph["models.registry"] = {*graph["models.registry"], "weights.pretrained"}  # the 0.1 registry's lazy import
    assert any("models.registry" in c and "weights.pretrained" in c for c in _cycles(graph))


def test_the_registry_is_a_leaf_of_the_models():
    assert {t for t in import_graph()["models.registry"] if _package(t) != "utils"} <= {"models.resnet"}


def test_import_reszoo_loads_no_tool_code():
    code = (
        "import sys, reszoo; heavy = ['torch', 'torchvision', 'huggingface_hub', 'reszoo.train', 'reszoo.bench', "
        "'reszoo.weights', 'reszoo.data', 'reszoo.models']; "
        "print(','.join(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "", f"`import reszoo` imported {out.stdout.strip()}"


def test_every_name_of_the_faces_resolves():
    for face in sorted(FACES):
        module = importlib.import_module(f"reszoo.{face}" if face else "reszoo")
        for name in module.__all__:
            assert getattr(module, name) is not None, f"reszoo.{face}.{name}"


def test_at_most_a_dozen_modules_directly_in_the_package():
    top = sorted(p.name for p in SRC.glob("*.py"))
    assert len(top) <= 12, top
