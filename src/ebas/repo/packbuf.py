"""Pack buffers: the few fixed, reused memory regions that packs are built in.

A write session builds packs of ``pack_size`` bytes (16 MiB by default) while a couple of
earlier packs upload. Growing a fresh ``bytearray`` for every pack, from several threads,
leaves the C allocator's per-thread arenas holding freed multi-MiB holes that are never
given back to the system: that alone doubled a backup's peak RSS. Instead every pack is
built in one of at most ``limit`` anonymous memory maps of one fixed capacity, taken from
and returned to :class:`PackBufferPool`; blobs are encrypted straight into their place
(:meth:`ebas.crypto.aead.Aead.seal_into`). Only pages a pack touched count towards RSS,
and the next pack reuses them.

The pool is not locked by itself: the write session calls it under its own lock and
waits on its own condition when every buffer is in use (back-pressure on the writers).
"""

from __future__ import annotations

import mmap

from ebas.repo.pack import header_length


class PackBuffer:
    """One pack under construction: ``view[:used]`` holds its encoded blobs, ``entries``
    describes them."""

    __slots__ = ("mem", "view", "used", "entries", "standard")

    def __init__(self, capacity: int, standard: bool = True):
        self.mem = mmap.mmap(-1, capacity)
        self.view = memoryview(self.mem)
        self.used = 0
        self.entries: list = []
        self.standard = standard  # a pool-sized buffer (kept for reuse) or a one-off for a huge blob

    @property
    def capacity(self) -> int:
        """Bytes this buffer can hold, header included."""
        return len(self.mem)

    def fits(self, length: int) -> bool:
        """True if one more blob of ``length`` stored bytes fits, with the header the pack
        will then need."""
        return self.used + length + header_length(len(self.entries) + 1) <= self.capacity

    def reserve(self, length: int) -> memoryview:
        """The next ``length`` bytes of the pack, to be written by the caller (release the
        view when done)."""
        out = self.view[self.used : self.used + length]
        self.used += length
        return out

    def reset(self) -> None:
        """Empty it for the next pack (the pages stay mapped and are overwritten)."""
        self.used = 0
        self.entries = []

    def close(self) -> None:
        """Unmap it (no view of it may be in use)."""
        self.view.release()
        self.mem.close()


class PackBufferPool:
    """At most ``limit`` buffers of ``capacity`` bytes; a blob too large for one gets a
    one-off buffer of its own size, which counts against the limit until it is given back."""

    def __init__(self, capacity: int, limit: int):
        self.capacity = capacity
        self.limit = max(1, limit)
        self._free: list[PackBuffer] = []
        self.live = 0  # buffers handed out or free, i.e. mapped

    def take(self, length: int) -> PackBuffer | None:
        """An empty buffer with room for a blob of ``length`` bytes, or None if every buffer
        is in use (wait for :meth:`give`, then ask again)."""
        need = length + header_length(1)
        if need <= self.capacity:
            if self._free:
                return self._free.pop()
            if self.live < self.limit:
                self.live += 1
                return PackBuffer(self.capacity)
            return None
        if self.live < self.limit or self._free:
            if self._free:  # make room: a free standard buffer is unmapped for the big one
                self._free.pop().close()
            else:
                self.live += 1
            return PackBuffer(need, standard=False)
        return None

    def give(self, buf: PackBuffer) -> None:
        """Return a buffer whose pack is uploaded (or abandoned)."""
        if buf.standard:
            buf.reset()
            self._free.append(buf)
        else:
            buf.close()
            self.live -= 1

    def close(self) -> None:
        """Unmap the free buffers."""
        while self._free:
            self._free.pop().close()
            self.live -= 1
