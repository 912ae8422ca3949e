"""Helpers of the transfer tests: stores with known content."""

from __future__ import annotations

import os

KiB = 1024


def fill(store, objects: dict[str, int], seed: int = 1) -> dict[str, bytes]:
    """Put objects of the given sizes with distinct pseudo-random bytes; their content."""
    out = {}
    for i, (name, size) in enumerate(sorted(objects.items())):
        data = os.urandom(size) if seed is None else bytes((j * 31 + i * 7 + seed) % 251 for j in range(size))
        store.put(name, data)
        out[name] = data
    return out


def content(store) -> dict[str, bytes]:
    """Every object of a store with its bytes."""
    return {o.name: store.get(o.name) for o in store.list()}
