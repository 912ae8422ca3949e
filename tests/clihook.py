"""PYTHONPATH for ``ebas`` subprocesses that should make test-strength keys quickly.

tests/support/fastkdf/sitecustomize.py (test-only, never installed) swaps in
``KdfParams.fast_for_tests`` for ``KdfParams.new`` inside the subprocess; nothing in ebas
itself reads a switch for it.
"""

from __future__ import annotations

import os
from pathlib import Path

FAST_KDF_HOOK = str(Path(__file__).with_name("support") / "fastkdf")


def fast_kdf_pythonpath(pythonpath: str | None = None) -> str:
    """``FAST_KDF_HOOK`` in front of ``pythonpath`` (default: this process's PYTHONPATH)."""
    rest = os.environ.get("PYTHONPATH", "") if pythonpath is None else pythonpath
    return FAST_KDF_HOOK + (os.pathsep + rest if rest else "")
