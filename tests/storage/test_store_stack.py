"""build_stack composes the wrappers in one fixed order."""

from __future__ import annotations

import pytest

from ebas.errors import PermissionDenied
from ebas.storage.backends.memory import MemoryStore
from ebas.storage.stack import build_stack
from ebas.storage.wrappers.faulty import FaultyStore
from ebas.storage.wrappers.readonly import AppendOnlyStore, ReadOnlyStore
from ebas.storage.wrappers.retry import RetryingStore


def layers(store):
    out = []
    while store is not None:
        out.append(type(store).__name__)
        store = getattr(store, "inner", None)
    return out


def test_default_is_retry_only():
    assert layers(build_stack(MemoryStore())) == ["RetryingStore", "MemoryStore"]


def test_no_retry():
    base = MemoryStore()
    assert build_stack(base, retry=False) is base


def test_policy_wrappers_sit_outside_retry(clock, entropy):
    stack = build_stack(MemoryStore(), append_only=True, clock=clock, entropy=entropy,
                        deletable_prefixes=("locks/",), attempts=2)
    assert layers(stack) == ["AppendOnlyStore", "RetryingStore", "MemoryStore"]
    assert isinstance(stack, AppendOnlyStore) and stack.deletable_prefixes == ("locks/",)
    retry = stack.inner
    assert isinstance(retry, RetryingStore)
    assert (retry.clock, retry.entropy, retry.attempts) == (clock, entropy, 2)


def test_read_only_wins_over_append_only():
    stack = build_stack(MemoryStore(), read_only=True, append_only=True)
    assert isinstance(stack, ReadOnlyStore)


def test_refusals_are_not_retried(clock):
    faulty = FaultyStore(MemoryStore())
    with pytest.raises(PermissionDenied):
        build_stack(faulty, read_only=True, clock=clock).put("x", b"1")
    assert faulty.calls["put"] == 0 and clock.sleeps == []
