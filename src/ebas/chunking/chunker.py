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
ReadInto = Callable[[memoryview], int]

DEFAULT_BUFFER = 4 * 1024 * 1024


class Chunker:
    """Splits streams according to a :class:`ChunkerParams`.

    Keyed parameters (``params.keyed``) need the repository's 32-byte ``seed``
    (``Repository.chunker()`` passes it); unkeyed ones ignore it.
    """

    def __init__(self, params: ChunkerParams, buffer_size: int = DEFAULT_BUFFER, *, seed: bytes | None = None):
        self.params = params
        # room for the chunk carried over (at most max_size) and at least one average chunk
        # more: every buffer then ends at least one complete chunk
        self.buffer_size = max(buffer_size, params.max_size + params.avg_size)
        self._sbox: bytes | None = None
        if params.keyed:
            if seed is None:
                raise UsageError("keyed chunker parameters need the repository's seed",
                                 hint="make the chunker with Repository.chunker()")
            self._sbox = gear_permutation(seed)

    def chunks(self, read: Reader, block_size: int = 0, size_hint: int | None = None,
               readinto: ReadInto | None = None) -> Iterator[memoryview]:
        """Yield consecutive chunks of the stream ``read`` (``read(n)`` returns up to ``n``
        bytes, ``b""`` at the end). ``block_size`` > 0 selects fixed-size blocks.

        ``size_hint``, the expected length of the stream, keeps the read buffer of a small
        file small; ``readinto(view)`` (fills ``view``, returns the byte count, 0 at the
        end) replaces ``read`` for content-defined chunks so that each buffer is one
        allocation of the same size. Neither changes the chunks.

        The yielded views stay valid after iteration moves on.
        """
        if block_size:
            yield from self._fixed(read, block_size)
        else:
            yield from self._cdc(read, size_hint, readinto)

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
            data = None  # not held while the chunks are out
            view = memoryview(buf)
            usable = len(buf) if eof else (len(buf) // block_size) * block_size
            for off in range(0, usable, block_size):
                yield view[off : min(off + block_size, usable)]
            carry = bytes(view[usable:])
            if eof:
                return

    def _cdc(self, read: Reader, size_hint: int | None = None, readinto: ReadInto | None = None) -> Iterator[memoryview]:
        p = self.params
        carry: bytes | memoryview = b""
        left = size_hint  # bytes the stream is expected to still hold
        while True:
            want = self.buffer_size - len(carry)
            if left is not None and 0 <= left < want:
                want = left + 1  # one byte more than expected: a short read proves the end
            buf, got = _next_buffer(read, readinto, carry, want)
            eof = got < want
            if left is not None:
                left -= got
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


def _next_buffer(read: Reader, readinto: ReadInto | None, carry, want: int) -> tuple[bytes | bytearray, int]:
    """``(carry + up to want new bytes, new byte count)`` as one object: one allocation
    per buffer, and a large file's buffers all of one size (the allocator reuses them
    instead of fragmenting)."""
    if readinto is None:
        data = _read_full(read, want)
        got = len(data)
        if carry:
            return b"".join((carry, data)), got
        return (data if type(data) is bytes else bytes(data)), got
    keep = len(carry)
    buf = bytearray(keep + want)
    buf[:keep] = carry
    got = 0
    with memoryview(buf) as view:
        while got < want:
            n = readinto(view[keep + got :])
            if not n:
                break
            got += n
    if got < want:
        del buf[keep + got :]
    return buf, got


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
