"""Cut a byte stream into chunks with FastCDC (the ``fastcdc`` package's Cython core) or
into fixed-size blocks.

Chunk boundaries depend only on the data (and, for keyed parameters, the repository's
seed: :mod:`ebas.chunking.keyed`), never on how it was read: the stream is read
in large buffers and the chunk that touches the end of a buffer is carried over and cut
again once more data (or the end) is known.
"""

from __future__ import annotations

from typing import Callable, Iterator

from fastcdc.fastcdc_cy import fastcdc_cy

from ebas.chunking.keyed import gear_permutation
from ebas.chunking.params import ChunkerParams
from ebas.errors import UsageError

Reader = Callable[[int], bytes]

DEFAULT_BUFFER = 8 * 1024 * 1024


class Chunker:
    """Splits streams according to a :class:`ChunkerParams`.

    Keyed parameters (``params.keyed``) need the repository's 32-byte ``seed``
    (``Repository.chunker()`` passes it); unkeyed ones ignore it.
    """

    def __init__(self, params: ChunkerParams, buffer_size: int = DEFAULT_BUFFER, *, seed: bytes | None = None):
        self.params = params
        self.buffer_size = max(buffer_size, 2 * params.max_size)
        self._sbox: bytes | None = None
        if params.keyed:
            if seed is None:
                raise UsageError("keyed chunker parameters need the repository's seed",
                                 hint="make the chunker with Repository.chunker()")
            self._sbox = gear_permutation(seed)

    def chunks(self, read: Reader, block_size: int = 0) -> Iterator[memoryview]:
        """Yield consecutive chunks of the stream ``read`` (``read(n)`` returns up to ``n``
        bytes, ``b""`` at the end). ``block_size`` > 0 selects fixed-size blocks.

        The yielded views stay valid after iteration moves on.
        """
        if block_size:
            yield from self._fixed(read, block_size)
        else:
            yield from self._cdc(read)

    def split(self, data: bytes, block_size: int = 0) -> list[memoryview]:
        """Chunks of an in-memory buffer (same boundaries as streaming it)."""
        pos = 0
        view = memoryview(data)

        def read(n: int) -> bytes:
            nonlocal pos
            out = view[pos : pos + n]
            pos += len(out)
            return out

        return list(self.chunks(read, block_size))

    def _fixed(self, read: Reader, block_size: int) -> Iterator[memoryview]:
        want = max(block_size, (self.buffer_size // block_size) * block_size)
        carry = b""
        while True:
            data = _read_full(read, want - len(carry))
            buf = carry + data if carry else data
            eof = len(data) < want - len(carry)
            view = memoryview(buf)
            usable = len(buf) if eof else (len(buf) // block_size) * block_size
            for off in range(0, usable, block_size):
                yield view[off : min(off + block_size, usable)]
            carry = bytes(view[usable:])
            if eof:
                return

    def _cdc(self, read: Reader) -> Iterator[memoryview]:
        p = self.params
        carry = b""
        while True:
            data = _read_full(read, self.buffer_size - len(carry))
            eof = len(data) < self.buffer_size - len(carry)
            buf = bytes(carry) + bytes(data) if carry else bytes(data)
            if not buf:
                return
            view = memoryview(buf)
            last_start = 0
            last_len = 0
            first = True
            scan = buf.translate(self._sbox) if self._sbox is not None else buf
            for c in fastcdc_cy(scan, p.min_size, p.avg_size, p.max_size):
                if not first:
                    yield view[last_start : last_start + last_len]
                first = False
                last_start, last_len = c.offset, c.length
            if eof:
                yield view[last_start : last_start + last_len]
                return
            # the chunk touching the buffer end may be cut short: re-cut it with more data
            carry = view[last_start:]


def _read_full(read: Reader, n: int) -> bytes:
    """Read exactly ``n`` bytes unless the stream ends first."""
    parts = []
    got = 0
    while got < n:
        piece = read(n - got)
        if not piece:
            break
        parts.append(piece)
        got += len(piece)
    if len(parts) == 1:
        return parts[0]
    return b"".join(parts)
