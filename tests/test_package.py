"""Package structure: the facades only re-export, every public name is documented and tested."""

from __future__ import annotations

import ast
import inspect
import pathlib

import logitkit
import logitkit.functional as LF
import logitkit.nn as LN

SRC = pathlib.Path(logitkit.__file__).parent


def test_version():
    assert logitkit.__version__.count(".") == 2


def test_facades_define_nothing():
    for name in ("functional.py", "nn.py"):
        tree = ast.parse((SRC / name).read_text())
        defined = [
            n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
        ]
        assert not defined, f"{name} must only import"


def test_all_lists_match_exports():
    for module in (LF, LN, logitkit):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"


def test_every_public_function_has_formula_example_and_reference():
    for name in LF.__all__:
        doc = inspect.getdoc(getattr(LF, name)) or ""
        assert ":math:" in doc or ".. math::" in doc, f"{name}: docstring needs the formula"
        assert "Example" in doc or ">>>" in doc, f"{name}: docstring needs an example"
    # Module docstrings carry the references for their functions.
    for name in LF.__all__:
        module = inspect.getmodule(getattr(LF, name))
        text = (module.__doc__ or "") + (inspect.getdoc(getattr(LF, name)) or "")
        assert "Reference" in text or "kexue.fm" in text or "torch" in text, name


def test_every_module_has_docstring():
    for name in LN.__all__:
        assert inspect.getdoc(getattr(LN, name)), name


def test_py_typed_marker_ships():
    assert (SRC / "py.typed").exists()
