"""Every docstring example (``>>>``) of the package, its scripts and its benchmarks runs and
shows what it says."""

import doctest
import importlib

import pytest

from tests._docs import ROOT

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _modules_with_examples():
    names = []
    for folder in ("keras_resblocks", "benchmarks", "scripts"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if ">>> " in path.read_text(encoding="utf-8"):
                parts = path.relative_to(ROOT / folder).with_suffix("").parts
                names.append(".".join([folder, *(p for p in parts if p != "__init__")]))
    return names


MODULES = _modules_with_examples()


def test_the_examples_are_found():
    assert {"keras_resblocks.models", "scripts.zoo", "scripts.zoo_report"} <= set(MODULES), MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, monkeypatch, capsys):
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name in {"torch"}:  # benchmark-only, never the package's
            pytest.skip(f"{name} needs {error.name}")
        raise
    result = doctest.testmod(module, optionflags=FLAGS, report=True)
    assert result.attempted > 0, f"{name}: no example found"
    assert result.failed == 0, capsys.readouterr().out
