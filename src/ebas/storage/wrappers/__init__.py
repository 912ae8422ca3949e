"""Stores that wrap a store to add one behaviour each (retry, faults, read-only, ...).

They are composed in one place, :func:`ebas.storage.stack.build_stack`.
"""

from ebas.storage.wrappers.base import StoreWrapper
from ebas.storage.wrappers.counting import CountingStore, StoreCounts
from ebas.storage.wrappers.faulty import Faults, FaultyStore
from ebas.storage.wrappers.readonly import AppendOnlyStore, ReadOnlyStore
from ebas.storage.wrappers.retry import RetryingStore

__all__ = ["AppendOnlyStore", "CountingStore", "Faults", "FaultyStore", "ReadOnlyStore", "RetryingStore",
           "StoreCounts", "StoreWrapper"]
