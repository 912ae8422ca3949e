"""``build_stack``: the one place where store wrappers are composed.

Order, innermost first: backend -> counting -> retry -> append-only / read-only. Policy
wrappers sit outside so a refused operation fails at once instead of being retried; the
counting (metrics) wrapper sits right on the backend so every attempt a retry makes is
counted as the request it is. A throttle wrapper will slot in between backend and retry
when it exists.
"""

from __future__ import annotations

from ebas.runtime import Clock, Entropy
from ebas.storage.base import Store
from ebas.storage.wrappers.counting import CountingStore, StoreCounts
from ebas.storage.wrappers.readonly import AppendOnlyStore, ReadOnlyStore
from ebas.storage.wrappers.retry import RetryingStore


def build_stack(store: Store, *, retry: bool = True, read_only: bool = False,
                append_only: bool = False, clock: Clock | None = None,
                entropy: Entropy | None = None, attempts: int = 5,
                deletable_prefixes: tuple[str, ...] = (), counts: StoreCounts | None = None) -> Store:
    """Wrap a backend ``store`` with the behaviours a repository client asked for.

    ``retry`` adds :class:`RetryingStore` (``attempts`` tries, backoff slept on
    ``clock``, jitter from ``entropy``). ``read_only`` wins over ``append_only``;
    ``deletable_prefixes`` are names an append-only client may still delete (locks).
    ``counts`` adds :class:`CountingStore` on the backend, recording every request there.
    """
    if counts is not None:
        store = CountingStore(store, counts)
    if retry:
        store = RetryingStore(store, clock, entropy, attempts=attempts)
    if read_only:
        store = ReadOnlyStore(store)
    elif append_only:
        store = AppendOnlyStore(store, deletable_prefixes=deletable_prefixes)
    return store
