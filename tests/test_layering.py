"""The layering of docs/ARCHITECTURE.md, checked on the source: each part uses only the parts above it.

The imports are read with :mod:`ast` (nothing is imported), so a new import that breaks a rule
fails here, with the file and line, before anything runs:

- ``sam2unext`` (folder ``sam2unext/``) imports nothing from ``sam2unext.geo`` or ``sam2unext.cli``;
- ``sam2unext.geo`` (folder ``geo/``, every sub-package) imports no ``sam2unext.cli``, no timm and,
  of the model core, only the modules of :data:`GEO_MAY_USE` (docs/CONTRACTS.md, "What the geo
  processor uses of the model core"): no Hiera/DINOv2 internals;
- the QGIS plugin (folder ``qgis_plugin/``) imports nothing of ``sam2unext`` at all: it runs the
  command and reads its JSON stream;
- the project's modules import each other without cycles.

These rules count every import, wherever it stands, except that the cycle check leaves out the
imports under ``if TYPE_CHECKING:`` (they never run). Imports inside a function body do count
for cycles: a lazy import back into a module that imports us is still two modules that import
each other (``sam2unext.api`` and ``sam2unext.loader`` were such a pair, issue 21).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Source folder -> the package it is installed as (pyproject.toml's package-dir).
PACKAGES = {"sam2unext": "sam2unext", "geo": "sam2unext.geo", "cli": "sam2unext.cli"}
#: The QGIS plugin's folder (its own package ``sam2unext_geo`` and its tools).
PLUGIN = "qgis_plugin"

#: The model-core modules the geo processor may import, and why (docs/CONTRACTS.md lists the same).
GEO_MAY_USE = {
    "sam2unext": "the public names of sam2unext/__init__.py (load_model, SegmentationModel, ...)",
    "sam2unext.api": "load, save and read checkpoints (checkpoint_bands: the bands before loading)",
    "sam2unext.loader": "ModelLoader, the one model factory, and its weights_note",
    "sam2unext.errors": "UserError and its kinds, option words",
    "sam2unext.files": "the one atomic writer, file fingerprints",
    "sam2unext.transforms": "low_res_view, to_unit_float, normalize: the model's input conventions",
    "sam2unext.bands": "BandConfig and the widening of RGB weights to N bands",
    "sam2unext.presets": "preset names and fields (plain data)",
    "sam2unext.train": "fine-tuning on rasters runs the model core's training loop",
    "sam2unext.data": "the training samplers and augmentations",
    "sam2unext.run_folder": "the files of a training run folder",
}
#: Third-party packages that are Hiera/DINOv2 internals to the geo processor.
GEO_MAY_NOT_USE = ("timm",)


@dataclass(frozen=True)
class Import:
    """One imported module, as written in one file."""

    source: str  # importing module
    target: str  # imported module (the longest project module the name resolves to)
    path: Path
    line: int
    type_only: bool  # under ``if TYPE_CHECKING:``: never runs

    def __str__(self) -> str:
        return (
            f"{self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path}:{self.line}: {self.target}"
        )


def module_names(root: Path, packages: dict[str, str]) -> dict[str, Path]:
    """Module name -> file, for every ``.py`` file under the package folders (recursively)."""
    names: dict[str, Path] = {}
    for folder, package in packages.items():
        for path in sorted((root / folder).rglob("*.py")):
            parts = path.relative_to(root / folder).with_suffix("").parts
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            names[".".join((package, *parts))] = path
    return names


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST, type_only: bool = False):
    """(import node, under ``if TYPE_CHECKING:``) for every import below ``node``."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child, type_only
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for stmt in child.body:
                yield from _walk_stmt(stmt, True)
            for stmt in child.orelse:
                yield from _walk_stmt(stmt, type_only)
        else:
            yield from _walk(child, type_only)


def _walk_stmt(stmt: ast.stmt, type_only: bool):
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        yield stmt, type_only
    else:
        yield from _walk(stmt, type_only)


def imports_of(name: str, path: Path, known: set[str]) -> list[Import]:
    """Every module that the file of module ``name`` imports, resolved to project modules where it can be."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node, type_only in _walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            module = ".".join(p for p in (base if node.level else "", node.module or "") if p)
            # ``from package import module`` imports the module; ``from module import name`` the module
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in known else module for a in node.names]
        found += [Import(name, target, path, node.lineno, type_only) for target in dict.fromkeys(targets)]
    return found


def project_imports(root: Path = ROOT, packages: dict[str, str] = PACKAGES) -> list[Import]:
    """Every import of every module of the project's packages."""
    names = module_names(root, packages)
    return [imp for name, path in names.items() for imp in imports_of(name, path, set(names))]


def within(module: str, package: str) -> bool:
    """``module`` is ``package`` or one of its sub-modules."""
    return module == package or module.startswith(package + ".")


def part_of(module: str) -> str:
    """The part a project module belongs to: ``sam2unext.geo``, ``sam2unext.cli`` or ``sam2unext``."""
    return next(p for p in ("sam2unext.geo", "sam2unext.cli", "sam2unext") if within(module, p))


def core_violations(imports: list[Import]) -> list[Import]:
    """Imports by the model core of the geo processor or of the command."""
    return [
        i
        for i in imports
        if part_of(i.source) == "sam2unext" and (within(i.target, "sam2unext.geo") or within(i.target, "sam2unext.cli"))
    ]


def geo_violations(imports: list[Import]) -> list[Import]:
    """Imports by the geo processor of the command, of timm, or of model-core modules outside GEO_MAY_USE."""
    bad = []
    for i in imports:
        if part_of(i.source) != "sam2unext.geo" or within(i.target, "sam2unext.geo"):
            continue
        if within(i.target, "sam2unext") and i.target not in GEO_MAY_USE:
            bad.append(i)
        elif any(within(i.target, p) for p in GEO_MAY_NOT_USE):
            bad.append(i)
    return bad


def plugin_violations(root: Path = ROOT) -> list[Import]:
    """Imports of ``sam2unext`` anywhere in the QGIS plugin's folder."""
    bad = []
    for path in sorted((root / PLUGIN).rglob("*.py")):
        for node, type_only in _walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if isinstance(node, ast.ImportFrom) and node.level:
                continue  # the plugin's own modules
            bad += [Import(str(path), n, path, node.lineno, type_only) for n in names if within(n, "sam2unext")]
    return bad


def import_cycles(imports: list[Import]) -> list[list[str]]:
    """The cycles (strongly connected groups of two or more modules, or a module importing itself)
    among project modules, following every import that can run (not those under TYPE_CHECKING)."""
    modules = {i.source for i in imports}  # a module that imports nothing is in no cycle
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for i in imports:
        if not i.type_only and i.target in modules:
            graph[i.source].add(i.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1 or v in graph.get(v, ()):
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return groups


def _report(bad: list[Import]) -> str:
    return "\n".join(str(i) for i in bad)


# ---------------------------------------------------------------------------------------- rules


@pytest.fixture(scope="module")
def imports() -> list[Import]:
    return project_imports()


def test_the_walk_sees_every_part(imports):
    sources = {i.source for i in imports}
    assert {"sam2unext.api", "sam2unext.loader", "sam2unext.geo", "sam2unext.cli.main"} <= sources
    assert any(within(s, "sam2unext.geo") and s.count(".") >= 2 for s in sources)


def test_model_core_imports_neither_geo_nor_cli(imports):
    bad = core_violations(imports)
    assert not bad, "the model core (sam2unext/) must not import the geo processor or the command:\n" + _report(bad)


def test_geo_uses_only_the_public_model_core(imports):
    bad = geo_violations(imports)
    assert not bad, (
        "the geo processor (geo/) imports a model-core internal, timm or the command; use the public "
        "names of sam2unext, or add the module to GEO_MAY_USE and docs/CONTRACTS.md with a reason:\n" + _report(bad)
    )


def test_plugin_imports_no_sam2unext():
    bad = plugin_violations()
    assert not bad, "the QGIS plugin must run the command, not import sam2unext:\n" + _report(bad)


def test_no_import_cycles(imports):
    cycles = import_cycles(imports)
    assert not cycles, "modules that import each other (lazily or not): " + "; ".join(" <-> ".join(c) for c in cycles)


# ------------------------------------------------------------------------------- the checker


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_checker_finds_each_kind_of_breach(tmp_path):
    root = _tree(
        tmp_path,
        {
            "sam2unext/__init__.py": "",
            "sam2unext/api.py": "from sam2unext.loader import x\n",
            "sam2unext/loader.py": "from sam2unext import api\n",
            "sam2unext/lazy.py": "def f():\n    from sam2unext.geo import run\n",
            "sam2unext/models.py": "import timm\n",
            "geo/__init__.py": "from .reading.open import y\n",
            "geo/reading/__init__.py": "",
            "geo/reading/open.py": "from ...models import SegmentationModel\nfrom ..api import z\n",
            "geo/api.py": "if TYPE_CHECKING:\n    import timm\nfrom sam2unext.errors import InputError\n",
            "cli/__init__.py": "",
        },
    )
    imports = project_imports(root)
    assert [(i.source, i.target) for i in core_violations(imports)] == [("sam2unext.lazy", "sam2unext.geo")]
    assert sorted((i.source, i.target) for i in geo_violations(imports)) == [
        ("sam2unext.geo.api", "timm"),
        ("sam2unext.geo.reading.open", "sam2unext.models"),
    ]
    assert import_cycles(imports) == [["sam2unext.api", "sam2unext.loader"]]


def test_checker_follows_lazy_imports_but_not_type_only_ones(tmp_path):
    files = {
        "sam2unext/__init__.py": "",
        "sam2unext/api.py": "from sam2unext.loader import x\n",
        "sam2unext/loader.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from sam2unext.api import a\n",
    }
    assert import_cycles(project_imports(_tree(tmp_path, files), {"sam2unext": "sam2unext"})) == []
    (tmp_path / "sam2unext/loader.py").write_text("def f():\n    from sam2unext.api import b\n")
    cycles = import_cycles(project_imports(tmp_path, {"sam2unext": "sam2unext"}))
    assert cycles == [["sam2unext.api", "sam2unext.loader"]]


def test_checker_finds_a_plugin_import(tmp_path):
    root = _tree(tmp_path, {"qgis_plugin/p/task.py": "from . import runner\nimport sam2unext.geo\n"})
    assert [i.target for i in plugin_violations(root)] == ["sam2unext.geo"]
