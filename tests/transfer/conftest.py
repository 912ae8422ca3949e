"""Fixtures for the transfer engine tests: a journal, stores with known content."""

from __future__ import annotations

import itertools
import os

import pytest

from ebas.runtime import FakeClock, FakeEntropy
from ebas.storage.backends.memory import MemoryStore

_counter = itertools.count()
KiB = 1024


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def entropy() -> FakeEntropy:
    return FakeEntropy(seed=11)


@pytest.fixture
def names():
    """Unique shared memory namespace names (dropped after the test)."""
    made: list[str] = []

    def make() -> str:
        name = f"xfer-{os.getpid()}-{next(_counter)}"
        made.append(name)
        return name

    yield make
    for n in made:
        MemoryStore.drop_namespace(n)


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
