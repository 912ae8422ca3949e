"""Chunker: boundaries depend only on the data, fixed blocks, parameter rules."""

from __future__ import annotations

import io
import random

import pytest
from fastcdc.fastcdc_cy import fastcdc_cy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ebas.chunking.chunker import Chunker
from ebas.chunking.params import DEFAULT_FIXED_RULES, ChunkerParams, FixedBlockRule
from ebas.errors import UsageError

TINY = ChunkerParams(min_size=256, avg_size=1024, max_size=4096)


def _random(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def _reader(data: bytes, sizes):
    """A ``read(n)`` that returns at most the next size from ``sizes`` (short reads)."""
    stream = io.BytesIO(data)
    it = iter(sizes)

    def read(n: int) -> bytes:
        try:
            k = next(it)
        except StopIteration:
            k = n
        return stream.read(max(1, min(n, k)))

    return read


def _reference(data: bytes, p: ChunkerParams) -> list[bytes]:
    """FastCDC over the whole input at once: the boundaries streaming must reproduce."""
    return [data[c.offset : c.offset + c.length] for c in fastcdc_cy(data, p.min_size, p.avg_size, p.max_size)]


# ------------------------------------------------------------------- FastCDC
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    size=st.integers(0, 60_000),
    read_sizes=st.lists(st.integers(1, 20_000), max_size=40),
    buffer_size=st.sampled_from([1, 8192, 9000, 20_000]),
)
def test_boundaries_do_not_depend_on_read_or_buffer_sizes(seed, size, read_sizes, buffer_size):
    data = _random(size, seed)
    chunker = Chunker(TINY, buffer_size=buffer_size)  # buffer is at least max_size + avg_size
    got = [bytes(c) for c in chunker.chunks(_reader(data, read_sizes))]
    assert b"".join(got) == data
    assert got == _reference(data, TINY)
    assert all(len(c) <= TINY.max_size for c in got)
    assert all(len(c) >= TINY.min_size for c in got[:-1])


def _readinto(data: bytes, sizes):
    """A ``readinto(view)`` over ``data`` that fills at most the next size from ``sizes``."""
    stream = io.BytesIO(data)
    it = iter(sizes)

    def readinto(view: memoryview) -> int:
        k = next(it, len(view))
        return stream.readinto(view[: max(1, min(len(view), k))])

    return readinto


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    size=st.integers(0, 60_000),
    read_sizes=st.lists(st.integers(1, 20_000), max_size=40),
    hint_error=st.sampled_from([None, 0, -1, 1, -5000, 5000, -100_000]),
    buffer_size=st.sampled_from([1, 9000, 20_000]),
)
def test_boundaries_do_not_depend_on_size_hint_or_readinto(seed, size, read_sizes, hint_error, buffer_size):
    """A size hint (right, or wrong because the file changed) and reading into the chunker's
    own buffers change how the stream is read, never the chunks."""
    data = _random(size, seed)
    hint = None if hint_error is None else max(0, size + hint_error)
    chunker = Chunker(TINY, buffer_size=buffer_size)
    via_read = [bytes(c) for c in chunker.chunks(_reader(data, read_sizes), size_hint=hint)]
    via_into = [bytes(c) for c in chunker.chunks(None, size_hint=hint, readinto=_readinto(data, read_sizes))]
    assert via_read == via_into == _reference(data, TINY)


def test_small_file_buffer_is_sized_by_the_hint():
    """A 10-byte file with a hint reads into an 11-byte buffer, not a multi-MiB one."""
    asked = []

    def readinto(view: memoryview) -> int:
        asked.append(len(view))
        return 0 if len(asked) > 1 else _fill(view, b"0123456789")

    chunks = [bytes(c) for c in Chunker(ChunkerParams()).chunks(None, size_hint=10, readinto=readinto)]
    assert chunks == [b"0123456789"] and asked[0] == 11 and max(asked) == 11


def _fill(view: memoryview, data: bytes) -> int:
    view[: len(data)] = data
    return len(data)


def test_streaming_large_input_with_small_buffer_matches_split():
    p = ChunkerParams(min_size=4096, avg_size=16384, max_size=65536)
    data = _random(3 * 1024 * 1024 + 12345, 1)
    whole = [bytes(c) for c in Chunker(p).split(data)]
    small = [bytes(c) for c in Chunker(p, buffer_size=2 * 65536).chunks(_reader(data, [777, 65536, 3] * 1000))]
    assert small == whole == _reference(data, p)
    assert len(whole) > 100  # really many chunks


def test_views_stay_valid_after_iteration_moves_on():
    data = _random(200_000, 2)
    chunks = list(Chunker(TINY, buffer_size=8192).chunks(_reader(data, [5000] * 100)))
    assert b"".join(bytes(c) for c in chunks) == data


def test_insertion_only_changes_nearby_chunks():
    """The point of CDC: inserting bytes early re-synchronises; most chunks are shared."""
    data = _random(400_000, 3)
    a = set(map(bytes, Chunker(TINY).split(data)))
    b = set(map(bytes, Chunker(TINY).split(data[:1000] + b"inserted!" + data[1000:])))
    assert len(a & b) >= len(a) - 4


def test_empty_input_gives_no_chunks():
    assert Chunker(TINY).split(b"") == []
    assert list(Chunker(TINY).chunks(lambda n: b"")) == []


def test_input_shorter_than_min_is_one_chunk():
    data = b"x" * 100
    assert [bytes(c) for c in Chunker(TINY).split(data)] == [data]


# -------------------------------------------------------------- fixed blocks
@settings(max_examples=40, deadline=None)
@given(size=st.integers(0, 50_000), block=st.sampled_from([512, 1000, 4096]),
       read_sizes=st.lists(st.integers(1, 9000), max_size=20))
def test_fixed_blocks(size, block, read_sizes):
    data = _random(size, size)
    got = [bytes(c) for c in Chunker(TINY, buffer_size=8192).chunks(_reader(data, read_sizes), block)]
    assert b"".join(got) == data
    assert all(len(c) == block for c in got[:-1])
    assert len(got) == -(-size // block)
    if got:
        assert 0 < len(got[-1]) <= block


def test_fixed_blocks_align_with_in_place_rewrites():
    block = 4096
    data = bytearray(_random(block * 40, 4))
    before = [bytes(c) for c in Chunker(TINY).split(bytes(data), block)]
    data[block * 7 + 10] ^= 0xFF  # one byte rewritten in place
    after = [bytes(c) for c in Chunker(TINY).split(bytes(data), block)]
    assert sum(a != b for a, b in zip(before, after)) == 1


# ------------------------------------------------------------------- params
@pytest.mark.parametrize("kw", [
    dict(min_size=32, avg_size=1024, max_size=4096),          # min too small
    dict(min_size=4096, avg_size=1024, max_size=8192),        # min > avg
    dict(min_size=256, avg_size=8192, max_size=4096),         # avg > max
    dict(min_size=256, avg_size=1024, max_size=512 << 20),    # max > 256 MiB
    dict(min_size=64, avg_size=128, max_size=4096),           # avg < 256
    dict(min_size=64, avg_size=512, max_size=512),            # max < 1 KiB
    dict(algorithm="rabin"),
    dict(fixed_rules=(FixedBlockRule("*.img", 100),)),        # block below 512 B
    dict(fixed_rules=(FixedBlockRule("*.img", 128 << 20),)),  # block above 64 MiB
])
def test_invalid_params_are_usage_errors(kw):
    with pytest.raises(UsageError):
        ChunkerParams(**kw)


def test_params_round_trip_through_dict():
    p = ChunkerParams(min_size=4096, avg_size=16384, max_size=65536,
                      fixed_rules=(FixedBlockRule("*.vm", 8192, 100),))
    assert ChunkerParams.from_dict(p.to_dict()) == p
    assert ChunkerParams.from_dict(ChunkerParams().to_dict()) == ChunkerParams()


def test_fixed_block_rules_by_name_and_size():
    p = ChunkerParams()
    big = 64 * 1024 * 1024
    assert p.fixed_block_for("disk.IMG", big) == 16 * 1024  # case-insensitive glob
    assert p.fixed_block_for("db.sqlite3", big + 1) == 16 * 1024
    assert p.fixed_block_for("disk.img", big - 1) == 0  # too small for the rule
    assert p.fixed_block_for("notes.txt", big * 4) == 0
    custom = ChunkerParams(fixed_rules=(FixedBlockRule("*.a", 1024, 10), FixedBlockRule("*", 2048, 0)))
    assert custom.fixed_block_for("x.a", 10) == 1024  # first matching rule wins
    assert custom.fixed_block_for("x.a", 9) == 2048
    assert custom.fixed_block_for("x.b", 0) == 2048
    assert ChunkerParams(fixed_rules=()).fixed_block_for("disk.img", big) == 0
    assert all(r.block_size == 16 * 1024 for r in DEFAULT_FIXED_RULES)
