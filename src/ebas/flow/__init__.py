"""Pure rate and retry maths (layer K): no I/O, no clocks of its own.

Anything that waits takes a ``Clock`` and anything random takes an ``Entropy`` from
:mod:`ebas.runtime`; the functions here only compute numbers.
"""

from ebas.flow.backoff import Backoff
from ebas.flow.tokenbucket import TokenBucket

__all__ = ["Backoff", "TokenBucket"]
