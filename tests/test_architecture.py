"""The house rules of docs/architecture.md that a machine can check: imports point down, private
names stay private, nothing imports the package face, no cycles, and `import reszoo` stays light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "reszoo"

# The layers of docs/architecture.md, bottom first. A module may import its own layer or below.
LAYERS: list[set[str]] = [
    {"_version", "errors", "checks", "constants", "devices", "fileio", "plaindata", "interrupts", "cpuinfo"}
    | {"accelerator"},
    {"layers", "stems", "shortcuts", "blocks", "resnet", "registry", "zoo", "summary", "features"},
    {"weights", "convert", "adapt", "transforms", "augment", "data", "recipes", "reference", "imagefolder", "inputs"},
    {"cache", "batches", "runfolder", "paramgroups"}
    | {"bench.machine", "bench.measuring", "bench.compiling", "bench.isolation"},
    {"hub", "publish", "loop", "freezing", "bench.reporting"}
    | {"calibration", "agreement", "biascorrection", "int8recipe"},
    {"pretrained", "train", "export", "ort", "quantize", "optimize", "evaluation", "prediction", "loading"}
    | {"bench.comparing", "bench.selfcheck", "bench.ort_compare", "bench"},
    {"experiment"},
    {"cli", "__main__", "commands", *(f"commands.{p.stem}" for p in (SRC / "commands").glob("*.py"))},
]
# Lazy (inside a function) imports that go up on purpose, with the reason.
UPWARD_ALLOWED = {
    # reszoo.hub.load_pretrained & co. were documented in 0.1; a module __getattr__ keeps them working.
    ("hub", "pretrained"),
    # create_model(name, pretrained=True) is the timm/torchvision one-liner; the loading it asks for
    # (downloads, cache, Hub) is a tool over the core, imported only when weights are asked for.
    ("registry", "pretrained"),
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1]) if parts[-1] == "__init__" else ".".join(parts)


def _rank(module: str) -> int:
    for rank, layer in enumerate(LAYERS):
        if module in layer:
            return rank
    raise AssertionError(f"{module} is in no layer of tests/test_architecture.py (and docs/architecture.md)")


def _imports(tree: ast.Module) -> list[tuple[str, list[str], bool]]:
    """(module imported, names imported, at module level?) for every reszoo import."""
    top = {id(node) for node in tree.body}
    for node in tree.body:  # imports under `if TYPE_CHECKING:` are not executed
        if isinstance(node, ast.If):
            top |= {id(n) for n in node.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "reszoo":
            found.append((node.module, [a.name for a in node.names], id(node) in top))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "reszoo":
                    found.append((alias.name, [], id(node) in top))
    return found


MODULES = {_module_name(p): ast.parse(p.read_text()) for p in sorted(SRC.rglob("*.py"))}


def _target(module: str, names: list[str]) -> list[str]:
    """The reszoo modules an import statement reaches (``from reszoo import data`` reaches reszoo.data)."""
    inner = module.removeprefix("reszoo").lstrip(".")
    if inner:
        return [inner]
    return [n for n in names if n in MODULES or f"{n}" in {m.split(".")[0] for m in MODULES}]


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m))
def test_imports_point_down_and_stay_public(module):
    for imported, names, _ in _imports(MODULES[module]):
        private = [n for n in names if n.startswith("_") and n != "__version__"]
        assert not private, f"reszoo.{module} imports the private {imported}.{private}"
        if imported == "reszoo" and not names:
            pytest.fail(f"reszoo.{module} imports the package face (`import reszoo`)")
        for target in _target(imported, names):
            if target in ("", "commands") and module == "cli":
                continue
            if (module, target) in UPWARD_ALLOWED:
                continue
            assert _rank(target) <= _rank(module), f"reszoo.{module} imports reszoo.{target}, a layer above it"


def test_no_private_attribute_of_another_module_is_used():
    # `other._name` where `other` is an imported reszoo module.
    for module, tree in MODULES.items():
        aliases = {a.asname or a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
        aliases &= {m.split(".")[-1] for m in MODULES} | {"rdata", "rt"}
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
                assert not (node.attr.startswith("_") and not node.attr.startswith("__")), (
                    f"reszoo.{module} uses the private {node.value.id}.{node.attr}"
                )


def test_no_import_cycles_at_module_level():
    graph = {
        module: {t for imp, names, top in _imports(tree) if top for t in _target(imp, names) if t in MODULES}
        for module, tree in MODULES.items()
        if module
    }
    seen: set[str] = set()

    def visit(node: str, stack: list[str]) -> None:
        if node in stack:
            raise AssertionError(f"import cycle: {' -> '.join([*stack[stack.index(node) :], node])}")
        if node in seen:
            return
        for nxt in graph.get(node, ()):
            visit(nxt, [*stack, node])
        seen.add(node)

    for module in graph:
        visit(module, [])


def test_import_reszoo_loads_no_tool_code():
    code = (
        "import sys, reszoo; heavy = ['torchvision', 'huggingface_hub', 'torch.utils.benchmark', "
        "'reszoo.train', 'reszoo.bench', 'reszoo.hub', 'reszoo.pretrained', 'reszoo.data', 'reszoo.transforms']; "
        "print(','.join(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "", f"`import reszoo` imported {out.stdout.strip()}"


def test_lazy_names_of_the_package_face_resolve():
    import reszoo

    for name in reszoo.__all__:
        assert getattr(reszoo, name) is not None, name
