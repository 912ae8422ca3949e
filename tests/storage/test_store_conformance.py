"""Run the Store conformance suite against every backend and wrapper stack."""

from __future__ import annotations

import pytest

from ebas.runtime import FakeClock, FakeEntropy
from ebas.storage.backends.file import FileStore
from ebas.storage.backends.memory import MemoryStore
from ebas.storage.stack import build_stack
from ebas.storage.testing.conformance import StoreConformance
from ebas.storage.wrappers.base import StoreWrapper
from ebas.storage.wrappers.faulty import FaultyStore
from ebas.storage.wrappers.readonly import AppendOnlyStore
from ebas.storage.wrappers.retry import RetryingStore

STORE_OPS = ["put", "open_write", "get", "stat", "list", "delete", "begin_upload",
             "upload_part", "parts", "complete", "abort", "uploads"]


def flaky_file(root):
    """retry(faulty(file)): every third call of every store operation fails transiently."""
    faulty = FaultyStore(FileStore(root))
    for op in STORE_OPS:
        faulty.faults.flaky(op, every=3)
    return RetryingStore(faulty, FakeClock(), FakeEntropy(1), attempts=4)


FACTORIES = {
    "memory": lambda tmp, ns: lambda: MemoryStore(ns),
    "file": lambda tmp, ns: lambda: FileStore(tmp / "repo"),
    "retry-flaky-file": lambda tmp, ns: lambda: flaky_file(tmp / "repo"),
    "passthrough-memory": lambda tmp, ns: lambda: StoreWrapper(MemoryStore(ns)),
    "append-only-memory": lambda tmp, ns: lambda: AppendOnlyStore(MemoryStore(ns)),
    "stack-file": lambda tmp, ns: lambda: build_stack(FileStore(tmp / "repo", fsync=False),
                                                      clock=FakeClock(), entropy=FakeEntropy()),
}


class TestConformance(StoreConformance):
    @pytest.fixture(params=sorted(FACTORIES))
    def make_store(self, request, tmp_path, memory_name):
        return FACTORIES[request.param](tmp_path, memory_name)
