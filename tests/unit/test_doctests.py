"""Every docstring example in the library runs and shows what it says."""

import doctest
import importlib
import pkgutil

import pytest

import tradeoffs

# Modules whose import needs a server or heavy optional pieces still get their examples checked;
# examples that load models are marked `# doctest: +SKIP` in the source.
MODULES = sorted(m.name for m in pkgutil.walk_packages(tradeoffs.__path__, "tradeoffs.") if m.name != "tradeoffs.cli")


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
