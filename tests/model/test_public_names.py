"""The public names of ``sam2unext``: lazy at run time (tests/model/test_model_structure.py checks that
importing the package imports no torch), known to type checkers, all importable."""

import ast
from pathlib import Path

import sam2unext


def _type_checking_names() -> dict[str, str]:
    """Name -> module of the imports under ``if TYPE_CHECKING:`` in sam2unext/__init__.py."""
    tree = ast.parse(Path(sam2unext.__file__).read_text())
    block = next(n for n in tree.body if isinstance(n, ast.If) and getattr(n.test, "id", "") == "TYPE_CHECKING")
    return {a.name: node.module for node in block.body if isinstance(node, ast.ImportFrom) for a in node.names}


def test_type_checkers_see_every_lazy_name_where_it_is_defined():
    assert _type_checking_names() == sam2unext._LAZY


def test_every_public_name_imports():
    for name in sam2unext.__all__:
        assert getattr(sam2unext, name) is not None, name
