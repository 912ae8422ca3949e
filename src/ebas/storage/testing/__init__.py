"""Test kit for stores: the conformance suite and fault injection.

``ebas.storage.testing.conformance.StoreConformance`` holds the tests every backend and
wrapper must pass (it needs pytest); :class:`FaultyStore` injects failures.
"""

from ebas.storage.wrappers.faulty import Faults, FaultyStore

__all__ = ["Faults", "FaultyStore"]
