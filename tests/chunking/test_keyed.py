"""Keyed chunk boundaries (ebas.chunking.keyed): per-repository, deterministic, and
still content-defined."""

from __future__ import annotations

import os
import random

import pytest
from fastcdc.fastcdc_cy import fastcdc_cy

from ebas import api
from ebas.backup.browse import list_path
from ebas.chunking.chunker import Chunker
from ebas.chunking.keyed import gear_permutation
from ebas.chunking.params import ChunkerParams
from ebas.errors import UsageError

KEYED = ChunkerParams(min_size=1024, avg_size=4096, max_size=16384, algorithm="fastcdc-keyed")
PLAIN = ChunkerParams(min_size=1024, avg_size=4096, max_size=16384)


def sizes(chunks) -> list[int]:
    return [len(c) for c in chunks]


def test_the_gear_permutation_is_a_deterministic_permutation_per_seed():
    a, b = gear_permutation(b"a" * 32), gear_permutation(b"b" * 32)
    assert sorted(a) == list(range(256)) and sorted(b) == list(range(256))
    assert a == gear_permutation(b"a" * 32) and a != b
    assert a != bytes(range(256))
    with pytest.raises(ValueError):
        gear_permutation(b"short")


def test_keyed_parameters_need_a_seed():
    with pytest.raises(UsageError, match="seed"):
        Chunker(KEYED)


def test_keys_change_boundaries_and_chunks_still_rebuild_the_data():
    data = random.Random(1).randbytes(1 << 20)
    one = Chunker(KEYED, seed=b"1" * 32).split(data)
    two = Chunker(KEYED, seed=b"2" * 32).split(data)
    assert b"".join(one) == data == b"".join(two)
    assert sizes(one) != sizes(two)
    assert sizes(one) == sizes(Chunker(KEYED, seed=b"1" * 32).split(data))  # deterministic
    assert all(KEYED.min_size <= n <= KEYED.max_size for n in sizes(one)[:-1])


def test_keyed_boundaries_do_not_depend_on_read_sizes():
    data = random.Random(2).randbytes(600_000)
    whole = sizes(Chunker(KEYED, seed=b"k" * 32).split(data))
    pos = 0

    def read(n):
        nonlocal pos
        n = min(n, 7777)
        out = data[pos : pos + n]
        pos += len(out)
        return out

    streamed = sizes(Chunker(KEYED, buffer_size=2 * KEYED.max_size, seed=b"k" * 32).chunks(read))
    assert streamed == whole


def test_keyed_chunking_is_still_content_defined():
    data = random.Random(3).randbytes(400_000)
    chunker = Chunker(KEYED, seed=b"s" * 32)
    before = set(map(bytes, chunker.split(data)))
    after = set(map(bytes, chunker.split(data[:1000] + b"inserted!" + data[1000:])))
    assert len(before & after) >= len(before) - 3


def test_unkeyed_parameters_cut_exactly_as_the_package_does():
    """Existing repositories keep their boundaries (and so their deduplication)."""
    data = random.Random(4).randbytes(300_000)
    mine = sizes(Chunker(PLAIN, seed=b"ignored" + b"\0" * 25).split(data))
    theirs = [c.length for c in fastcdc_cy(data, PLAIN.min_size, PLAIN.avg_size, PLAIN.max_size)]
    assert mine == theirs


def _chunk_ids(repo, path: str, snapshot) -> list[bytes]:
    (_, node), = list_path(repo, snapshot, path)
    return node.chunk_ids


def _chunk_sizes_stored(repo, path: str) -> list[int]:
    return [repo.index.table.lookup(cid)[2] for cid in _chunk_ids(repo, path, repo.find_snapshot("latest"))]


def test_two_repositories_cut_the_same_file_differently(repos, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "known.bin").write_bytes(os.urandom(2 << 20))
    a, b = repos.init("a"), repos.init("b")
    assert a.config.chunker.keyed and b.config.chunker.keyed
    api.backup(a, [str(src)])
    api.backup(b, [str(src)])
    path = str(src / "known.bin")
    in_a, in_b = _chunk_sizes_stored(a, path), _chunk_sizes_stored(b, path)
    assert in_a != in_b  # stored sizes do not give the file away by its public FastCDC cut
    public = [c.length for c in fastcdc_cy((src / "known.bin").read_bytes(), a.config.chunker.min_size,
                                           a.config.chunker.avg_size, a.config.chunker.max_size)]
    assert len(in_a) != len(public) or sizes(a.chunker().split((src / "known.bin").read_bytes())) != public
    # one repository is deterministic: a reopened repository cuts the same chunks (full backup adds nothing)
    again = repos.reopen(a)
    first_ids = _chunk_ids(a, path, a.find_snapshot("latest"))
    res = api.backup(again, [str(src)], level="full")
    assert _chunk_ids(again, path, res.snapshot) == first_ids
    assert res.snapshot.stats["bytes_added"] < 64 * 1024  # at most new tree blobs, no data


def test_the_permutation_and_seed_derivation_are_pinned():
    """They are part of the format (docs/format.md, "Chunking"): a change would move every
    boundary of every existing keyed repository and break its deduplication."""
    import blake3

    from ebas.repo.subkeys import derive

    table = gear_permutation(bytes(32))
    assert table[:16].hex() == "082cf56f9e8d8e50aea3b8eb0982cc90"
    assert blake3.blake3(table).hexdigest()[:32] == "f3a2b798c251ddfae954a2bbaa99230a"
    assert derive(bytes(32), "chunker gear").hex()[:32] == "1d8b3b00e160534419261c0d7b62da55"
