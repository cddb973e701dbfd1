"""Size limits of issue 21, checked on the source with :mod:`ast` (nothing is imported).

In the folders of :data:`FOLDERS` (every ``.py`` file, recursively):

- no module is longer than :data:`MAX_MODULE_LINES` lines;
- no function (a method or a nested function counts on its own) is longer than
  :data:`MAX_FUNCTION_LINES` lines, from its ``def`` to its last line;
- at most :data:`MAX_WIDE_ENTRY_POINTS` public entry points take more than
  :data:`MAX_PARAMETERS` parameters, and they are named in :data:`WIDE_ENTRY_POINTS`. A public
  entry point is a public function of a public module, or a public method of a public class;
  every parameter counts (``*args`` and ``**kwargs`` too) but ``self`` and ``cls``.

``cli/`` stays out: a typer command takes one parameter per flag. The files of :data:`EXEMPT`
stay out until the branch that splits them lands.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Source folders under the limits.
FOLDERS = ("sam2unext", "geo")
#: Files left out for now, and why ("folder/file.py": reason).
EXEMPT: dict[str, str] = {}

MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 100
MAX_PARAMETERS = 12
MAX_WIDE_ENTRY_POINTS = 2
#: The public entry points allowed more than MAX_PARAMETERS parameters ("folder/file.py:name").
WIDE_ENTRY_POINTS: set[str] = {
    "geo/finetune.py:finetune",  # rasters, labels, weights, bands and the training loop's own switches
    "geo/demo/demo_run.py:run_demo",  # the demo command's options, one each
}


@dataclass(frozen=True)
class Function:
    """One function of one source file."""

    where: str  # "folder/file.py:Class.name"
    lines: int
    parameters: int
    public: bool


def _public(name: str) -> bool:
    return not name.startswith("_")


def functions_of(path: Path, root: Path = ROOT) -> list[Function]:
    """Every function and method in ``path``, with its length and parameter count."""
    rel = path.relative_to(root).as_posix()
    module_public = all(_public(part) or part == "__init__.py" for part in path.relative_to(root).parts)
    found: list[Function] = []

    def visit(node: ast.AST, prefix: str, public: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.", public and _public(child.name))
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                a = child.args
                names = [p.arg for p in (*a.posonlyargs, *a.args, *a.kwonlyargs) if p.arg not in ("self", "cls")]
                count = len(names) + (a.vararg is not None) + (a.kwarg is not None)
                lines = (child.end_lineno or child.lineno) - child.lineno + 1
                is_public = public and _public(child.name)
                found.append(Function(f"{rel}:{prefix}{child.name}", lines, count, is_public))
                visit(child, f"{prefix}{child.name}.", False)  # a nested function is no entry point
            else:
                visit(child, prefix, public)

    visit(ast.parse(path.read_text(), str(path)), "", module_public)
    return found


def source_files(root: Path = ROOT, folders: tuple[str, ...] = FOLDERS) -> list[Path]:
    """The ``.py`` files under the limits."""
    files = [p for folder in folders for p in sorted((root / folder).rglob("*.py"))]
    return [p for p in files if not p.is_relative_to(root) or p.relative_to(root).as_posix() not in EXEMPT]


def long_modules(files: list[Path]) -> list[str]:
    lengths = ((p, len(p.read_text().splitlines())) for p in files)
    return [
        f"{p.relative_to(ROOT) if p.is_relative_to(ROOT) else p}: {n} lines" for p, n in lengths if n > MAX_MODULE_LINES
    ]


def long_functions(functions: list[Function]) -> list[str]:
    return [f"{f.where}: {f.lines} lines" for f in functions if f.lines > MAX_FUNCTION_LINES]


def wide_entry_points(functions: list[Function]) -> dict[str, int]:
    return {f.where: f.parameters for f in functions if f.public and f.parameters > MAX_PARAMETERS}


@pytest.fixture(scope="module")
def functions() -> list[Function]:
    return [f for p in source_files() for f in functions_of(p)]


def test_the_check_reads_every_folder(functions):
    for folder in FOLDERS:
        assert any(f.where.startswith(folder + "/") for f in functions), folder


def test_no_module_is_too_long():
    bad = long_modules(source_files())
    assert not bad, f"split these modules by job (at most {MAX_MODULE_LINES} lines):\n" + "\n".join(bad)


def test_no_function_is_too_long(functions):
    bad = long_functions(functions)
    assert not bad, f"split these functions by job (at most {MAX_FUNCTION_LINES} lines):\n" + "\n".join(bad)


def test_few_entry_points_take_many_parameters(functions):
    wide = wide_entry_points(functions)
    assert len(WIDE_ENTRY_POINTS) <= MAX_WIDE_ENTRY_POINTS
    assert set(wide) <= WIDE_ENTRY_POINTS, (
        f"public functions with more than {MAX_PARAMETERS} parameters: {wide}; group the options "
        f"(an options object, or the steps' own functions)"
    )


def test_the_checker_measures_what_it_says(tmp_path):
    source = (
        "class Model:\n"
        "    def predict(self, a, b, /, c, *rest, d, **more):\n"
        "        def inner(x):\n"
        "            return x\n"
        "        return inner\n"
        "def _private(a, b):\n"
        "    pass\n"
    )
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text(source)
    found = {f.where: f for f in functions_of(tmp_path / "pkg" / "mod.py", tmp_path)}
    assert found["pkg/mod.py:Model.predict"] == Function("pkg/mod.py:Model.predict", 4, 6, True)
    assert found["pkg/mod.py:Model.predict.inner"] == Function("pkg/mod.py:Model.predict.inner", 2, 1, False)
    assert found["pkg/mod.py:_private"].public is False
    (tmp_path / "pkg" / "_hidden.py").write_text("def f(a):\n    pass\n")
    assert functions_of(tmp_path / "pkg" / "_hidden.py", tmp_path)[0].public is False
