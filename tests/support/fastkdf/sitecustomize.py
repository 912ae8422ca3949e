"""Test-only: fast KDF parameters for ``ebas`` subprocesses started by the test suite.

tests/conftest.py puts this directory on PYTHONPATH for the CLI subprocesses it runs;
Python then imports this module at start-up. When ``ebas.crypto.kdf`` is imported, its
``KdfParams.new`` is replaced by ``KdfParams.fast_for_tests``, so ``ebas init`` and
``ebas key add`` make keys in microseconds. Nothing in ebas itself reads a switch for
this: an installed ebas has no way to make such keys from the command line, and every
open of a repository whose key has test-strength parameters warns.
"""

import importlib.abc
import importlib.machinery
import sys

_TARGET = "ebas.crypto.kdf"


def _patch(module) -> None:
    fast = module.KdfParams.fast_for_tests.__func__
    module.KdfParams.new = classmethod(lambda cls, entropy, algorithm=module.ARGON2ID: fast(cls, entropy, algorithm))


class _Loader(importlib.abc.Loader):
    def __init__(self, inner):
        self.inner = inner

    def create_module(self, spec):
        return self.inner.create_module(spec)

    def exec_module(self, module):
        self.inner.exec_module(module)
        _patch(module)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != _TARGET:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _Loader(spec.loader)
        return spec


if _TARGET in sys.modules:  # pragma: no cover - imported before site ran
    _patch(sys.modules[_TARGET])
else:
    sys.meta_path.insert(0, _Finder())
