"""``build_stack``: the one place where store wrappers are composed.

Order, innermost first: backend -> counting -> throttle -> retry -> append-only / read-only.
Policy wrappers sit outside so a refused operation fails at once instead of being retried;
the counting (metrics) wrapper sits right on the backend so every attempt a retry makes is
counted as the request it is; the throttle sits inside retry so every attempt pays for
the bytes it sends again.

The bandwidth limit comes from ``bwlimit=`` here or from the store URL's ``?bwlimit=``
option (kept on the store by :func:`ebas.storage.registry.open_store`): a rate
(``50MiB/s``) or a timetable (``Mon-Fri 08:00-18:00 10MiB/s; else unlimited``). Pass a
:class:`~ebas.storage.wrappers.throttle.Link` as ``link`` to share one budget between
several stacks (all streams of all jobs on one WAN link).
"""

from __future__ import annotations

from ebas.runtime import Clock, Entropy
from ebas.storage.base import Store
from ebas.storage.wrappers.counting import CountingStore, StoreCounts
from ebas.storage.wrappers.readonly import AppendOnlyStore, ReadOnlyStore
from ebas.storage.wrappers.retry import RetryingStore
from ebas.storage.wrappers.throttle import Link, ThrottledStore


def build_stack(store: Store, *, retry: bool = True, read_only: bool = False,
                append_only: bool = False, clock: Clock | None = None,
                entropy: Entropy | None = None, attempts: int = 5,
                deletable_prefixes: tuple[str, ...] = (), counts: StoreCounts | None = None,
                bwlimit: str | float | None = None, link: Link | None = None) -> Store:
    """Wrap a backend ``store`` with the behaviours a repository client asked for.

    ``retry`` adds :class:`RetryingStore` (``attempts`` tries, backoff slept on
    ``clock``, jitter from ``entropy``). ``read_only`` wins over ``append_only``;
    ``deletable_prefixes`` are names an append-only client may still delete (locks).
    ``counts`` adds :class:`CountingStore` on the backend, recording every request there.
    ``link`` (a shared :class:`Link`) or ``bwlimit`` (else the URL's ``?bwlimit=``) adds
    :class:`ThrottledStore`; ``link`` wins.
    """
    if bwlimit is None:
        bwlimit = getattr(store, "bwlimit", None)
    if link is None and bwlimit is not None:
        link = Link.parse(bwlimit, clock=clock)
    if counts is not None:
        store = CountingStore(store, counts)
    if link is not None:
        store = ThrottledStore(store, link)
    if retry:
        store = RetryingStore(store, clock, entropy, attempts=attempts)
    if read_only:
        store = ReadOnlyStore(store)
    elif append_only:
        store = AppendOnlyStore(store, deletable_prefixes=deletable_prefixes)
    return store
