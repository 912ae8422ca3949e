"""Fixtures for the transfer engine tests: a journal, stores with known content."""

from __future__ import annotations

import itertools
import os

import pytest

from ebas.runtime import FakeClock, FakeEntropy
from ebas.storage.backends.memory import MemoryStore

_counter = itertools.count()


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
