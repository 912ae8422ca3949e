"""Fixtures shared by the storage tests."""

from __future__ import annotations

import itertools

import pytest

from ebas.runtime import FakeClock, FakeEntropy
from ebas.storage.backends.memory import MemoryStore

_counter = itertools.count()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def entropy() -> FakeEntropy:
    return FakeEntropy(seed=7)


@pytest.fixture
def memory_name():
    """A unique shared memory namespace name, dropped after the test."""
    name = f"test-{next(_counter)}"
    yield name
    MemoryStore.drop_namespace(name)
