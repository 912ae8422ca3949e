"""Repository format pieces: packs, index segments, the dedup table, the blob codec,
snapshots, trees, config and locks."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ebas.errors import (
    AmbiguousSnapshot,
    IndexDamaged,
    IntegrityError,
    LockError,
    SnapshotNotFound,
    UnsupportedFormat,
)
from ebas.repo import dedup as dedup_mod
from ebas.repo.blobcodec import CODEC_RAW, CODEC_ZSTD, BlobCodec
from ebas.repo.config import FORMAT_VERSION, RepoConfig
from ebas.repo.dedup import DedupTable
from ebas.repo.index import (
    ENTRY_DTYPE,
    IndexSegment,
    check_segment_name,
    segment_name,
)
from ebas.repo.keys import MasterKey
from ebas.repo.locks import LockManager, reader_lock
from ebas.repo.pack import (
    KIND_DATA,
    KIND_TREE,
    MAGIC,
    PackEntry,
    encode_header,
    pack_id_from_name,
    pack_name,
    parse_pack,
    read_pack_header,
)
from ebas.repo.snapshots import Snapshot, filter_snapshots, seal, select, unseal
from ebas.repo.tree import DIR, FILE, SYMLINK, Node, decode_tree, encode_tree
from ebas.runtime import FakeClock, FakeEntropy
from ebas.storage.backends.memory import MemoryStore

ENTROPY = FakeEntropy(11)
MASTER = MasterKey.generate(ENTROPY)
AEAD = MASTER.aead(ENTROPY)
IDS = MASTER.ids()


def _blob(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def build_pack(blobs: list[tuple[int, bytes]], codec: BlobCodec | None = None) -> tuple[bytes, list[PackEntry]]:
    """A pack as the write session builds it: encoded blobs, then the header."""
    codec = codec or BlobCodec(AEAD, IDS)
    buf = bytearray()
    entries = []
    for kind, data in blobs:
        bid = IDS.blob_id(data)
        stored, c = codec.encode(bid, data)
        entries.append(PackEntry(bid, kind, c, len(buf), len(stored), len(data)))
        buf += stored
    buf += encode_header(AEAD, entries)
    return bytes(buf), entries


# ======================================================================= packs
@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([KIND_DATA, KIND_TREE]), st.binary(min_size=0, max_size=3000)),
                min_size=1, max_size=12))
def test_pack_header_round_trip(blobs):
    data, entries = build_pack(blobs)
    assert data.endswith(MAGIC)
    assert parse_pack(AEAD, data) == entries
    store = MemoryStore()
    store.put("data/xx/p", data)
    assert read_pack_header(store, "data/xx/p", AEAD) == entries
    codec = BlobCodec(AEAD, IDS)
    for (kind, plain), e in zip(blobs, entries):
        assert e.kind == kind and e.raw_length == len(plain)
        assert codec.decode(e.blob_id, data[e.offset : e.offset + e.length]) == plain


def test_read_pack_header_of_big_pack_uses_two_reads():
    data, entries = build_pack([(KIND_DATA, _blob(50_000, i)) for i in range(3000)][:40])
    store = MemoryStore()
    store.put("data/big", data)
    assert read_pack_header(store, "data/big", AEAD, size=len(data)) == entries


@pytest.mark.parametrize("cut", [1, 5, 12, 100, 2000])
def test_truncated_pack_is_an_integrity_error(cut):
    data, _ = build_pack([(KIND_DATA, _blob(3000, i)) for i in range(3)])
    with pytest.raises(IntegrityError):
        parse_pack(AEAD, data[:-cut])
    store = MemoryStore()
    store.put("data/t", data[:-cut])
    with pytest.raises(IntegrityError):
        read_pack_header(store, "data/t", AEAD)


def test_empty_and_tiny_packs_are_integrity_errors():
    store = MemoryStore()
    for body in (b"", b"x", MAGIC, b"\x00\x00\x00\x00" + MAGIC, b"\xff\xff\xff\x7f" + MAGIC):
        store.put("data/e", body)
        with pytest.raises(IntegrityError):
            read_pack_header(store, "data/e", AEAD)


def test_bad_magic_is_an_integrity_error():
    data, _ = build_pack([(KIND_DATA, b"hello world" * 100)])
    bad = data[:-1] + bytes([data[-1] ^ 0x20])
    with pytest.raises(IntegrityError, match="magic"):
        parse_pack(AEAD, bad)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_corruption_of_header_or_trailer_is_detected(data):
    pack, entries = build_pack([(KIND_DATA, _blob(700, 1)), (KIND_TREE, b"{}" * 50)])
    header_start = entries[-1].offset + entries[-1].length
    pos = data.draw(st.integers(header_start, len(pack) - 1))
    bit = data.draw(st.integers(0, 7))
    bad = bytearray(pack)
    bad[pos] ^= 1 << bit
    with pytest.raises(IntegrityError):
        parse_pack(AEAD, bytes(bad))


def test_header_under_another_key_is_refused():
    data, _ = build_pack([(KIND_DATA, b"abc" * 100)])
    other = MasterKey.generate(FakeEntropy(99)).aead(FakeEntropy(99))
    with pytest.raises(IntegrityError):
        parse_pack(other, data)


def test_pack_names():
    pid = bytes(range(32))
    name = pack_name(pid)
    assert name == f"data/00/{pid.hex()}"
    assert pack_id_from_name(name) == pid
    for bad in ("data/00/zz", "data/00/" + "ab" * 31, "config"):
        with pytest.raises(IntegrityError):
            pack_id_from_name(bad)


# ================================================================ index segments
def _segment(n_packs=3, per_pack=5, supersedes=()):
    packs = {}
    for p in range(n_packs):
        pid = bytes([p]) * 32
        packs[pid] = [PackEntry(IDS.blob_id(b"%d-%d" % (p, i)), i % 2, i % 2, i * 100, 100, 150 + i)
                      for i in range(per_pack)]
    return packs, IndexSegment.from_packs(packs, list(supersedes))


def test_index_segment_round_trip():
    packs, seg = _segment(supersedes=[b"\x07" * 32])
    stored = seg.encode(AEAD)
    name = segment_name(stored)
    check_segment_name(name, stored)
    back = IndexSegment.decode(AEAD, stored, name)
    assert back.packs == list(packs)
    assert back.supersedes == [b"\x07" * 32]
    assert np.array_equal(back.entries, seg.entries)
    grouped = back.pack_entries()
    for pid, entries in packs.items():
        rows = grouped[pid]
        assert [bytes(r["id"]) for r in rows] == [e.blob_id for e in entries]
        assert [int(r["offset"]) for r in rows] == [e.offset for e in entries]
        assert [int(r["raw"]) for r in rows] == [e.raw_length for e in entries]
        assert [int(r["kind"]) for r in rows] == [e.kind for e in entries]


def test_empty_index_segment_round_trip():
    seg = IndexSegment()
    back = IndexSegment.decode(AEAD, seg.encode(AEAD))
    assert back.packs == [] and len(back.entries) == 0


@pytest.mark.parametrize("where", [0, 13, 40, -17, -1])
def test_corrupted_index_segment_is_index_damaged(where):
    _, seg = _segment()
    stored = bytearray(seg.encode(AEAD))
    name = segment_name(bytes(stored))
    stored[where] ^= 0x04
    with pytest.raises(IndexDamaged, match="index/"):
        check_segment_name(name, bytes(stored))
    with pytest.raises(IndexDamaged, match="index/x"):
        IndexSegment.decode(AEAD, bytes(stored), "index/x")


def test_truncated_index_segment_is_index_damaged():
    _, seg = _segment()
    stored = seg.encode(AEAD)
    for n in (0, 10, len(stored) - 1):
        with pytest.raises(IndexDamaged):
            IndexSegment.decode(AEAD, stored[:n])


def test_index_segment_with_inconsistent_counts_is_index_damaged():
    import zstandard

    from ebas.repo.index import AAD, HEAD
    from ebas.repo.index import MAGIC as IMAGIC

    # correctly sealed (so only the structure is wrong): an entry points at pack 5 of 1
    arr = np.zeros(1, ENTRY_DTYPE)
    arr[0] = (b"\x01" * 32, 5, 0, 0, 0, 0, 10, 10)
    plain = HEAD.pack(IMAGIC, 1, 0, 1, 1) + b"\x02" * 32 + arr.tobytes()
    stored = AEAD.seal(zstandard.ZstdCompressor().compress(plain), AAD)
    with pytest.raises(IndexDamaged, match="pack not in the segment"):
        IndexSegment.decode(AEAD, stored)
    plain = HEAD.pack(IMAGIC, 1, 0, 1, 2) + b"\x02" * 32 + arr.tobytes()  # says 2 entries, has 1
    stored = AEAD.seal(zstandard.ZstdCompressor().compress(plain), AAD)
    with pytest.raises(IndexDamaged, match="size does not match"):
        IndexSegment.decode(AEAD, stored)


# ================================================================== dedup table
def _ids(n: int, seed: int = 0) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(32) for _ in range(n)]


def _entries(ids: list[bytes], pack_no: int = 0, offset: int = 0) -> np.ndarray:
    arr = np.zeros(len(ids), ENTRY_DTYPE)
    arr["id"] = ids
    arr["pack"] = pack_no
    arr["offset"] = np.arange(len(ids), dtype=np.uint32) * 10 + offset
    arr["length"] = 10
    return arr


def test_dedup_add_lookup_contains():
    t = DedupTable()
    ids = _ids(1000)
    p1, p2 = b"\x01" * 32, b"\x02" * 32
    for i, b in enumerate(ids[:500]):
        t.add(b, p1, i * 10, 10)
    t.add_segment([p2], _entries(ids[500:], 0, 7))
    assert len(t) == 1000
    assert t.lookup(ids[3]) == (p1, 30, 10)
    assert t.lookup(ids[503]) == (p2, 37, 10)
    assert ids[999] in t and ids[0] in t
    missing = _ids(50, seed=1)
    assert t.lookup(missing[0]) is None
    assert missing[0] not in t
    got = t.contains_many(ids[::7] + missing)
    assert got.tolist() == [True] * len(ids[::7]) + [False] * 50
    t.compact()
    assert len(t) == 1000
    assert t.lookup(ids[3]) == (p1, 30, 10) and t.lookup(ids[503]) == (p2, 37, 10)
    assert t.contains_many(ids[::7] + missing).tolist() == [True] * len(ids[::7]) + [False] * 50
    assert t.contains_many([]).tolist() == []
    assert t.has_pack(p1) and t.has_pack(p2) and not t.has_pack(b"\x03" * 32)
    assert t.stored_bytes() == 10_000


def test_dedup_ids_sharing_prefixes():
    """Ids that share their first 8 bytes (the sorted key) must still be told apart."""
    t = DedupTable()
    base = b"\xaa" * 8
    ids = [base + bytes([i]) * 24 for i in range(10)]
    t.add_segment([b"\x01" * 32], _entries(ids[:5]))
    t.compact()
    assert t.contains_many(ids).tolist() == [True] * 5 + [False] * 5
    for i in range(5):
        assert t.lookup(ids[i]) == (b"\x01" * 32, i * 10, 10)
    for i in range(5, 10):
        assert t.lookup(ids[i]) is None and ids[i] not in t


def test_dedup_merge_of_many_additions(monkeypatch):
    monkeypatch.setattr(dedup_mod, "MERGE_AT", 1000)
    t = DedupTable()
    ids = _ids(5500, seed=2)
    packs = [bytes([i]) * 32 for i in range(11)]
    for i, b in enumerate(ids):
        t.add(b, packs[i // 500], i, 10)
    assert len(t._delta) < 1000  # merged in bulk several times
    assert len(t) == 5500
    rng = random.Random(3)
    for i in rng.sample(range(5500), 300):
        assert t.lookup(ids[i]) == (packs[i // 500], i, 10)
    assert t.contains_many(ids).all()


def test_dedup_duplicates_first_location_wins():
    t = DedupTable()
    b = _ids(1)[0]
    p1, p2, p3 = (bytes([i]) * 32 for i in (1, 2, 3))
    t.add(b, p1, 0, 10)
    t.add(b, p2, 5, 10)
    assert t.lookup(b) == (p1, 0, 10) and len(t) == 1
    t.compact()
    t.add(b, p3, 9, 10)  # already in the sorted arrays
    assert t.lookup(b) == (p1, 0, 10)
    assert len(t) == 1
    t.add_segment([p2], _entries([b]))
    t.compact()
    assert t.lookup(b) == (p1, 0, 10) and len(t) == 1


def test_dedup_remove_packs():
    t = DedupTable()
    ids = _ids(300, seed=4)
    p = [bytes([i]) * 32 for i in range(3)]
    for i, b in enumerate(ids):
        t.add(b, p[i % 3], i, 10)
    t.remove_packs({p[1], b"\x09" * 32})
    assert len(t) == 200
    for i, b in enumerate(ids):
        if i % 3 == 1:
            assert t.lookup(b) is None and b not in t
        else:
            assert t.lookup(b) == (p[i % 3], i, 10)
    assert t.contains_many(ids).tolist() == [i % 3 != 1 for i in range(300)]
    # a removed blob can be stored again somewhere else
    t.add(ids[1], p[0], 999, 10)
    assert t.lookup(ids[1]) == (p[0], 999, 10)


def test_dedup_lookups_stay_correct_while_another_thread_merges(monkeypatch):
    """Readers (a backup's change detection) run while upload threads add blobs and the
    table merges its pending additions: a known blob must never look absent."""
    import threading

    monkeypatch.setattr(dedup_mod, "MERGE_AT", 500)
    t = DedupTable()
    known = _ids(5000, seed=6)
    for i, b in enumerate(known):
        t.add(b, b"\x01" * 32, i, 10)
    t.compact()
    stop = threading.Event()
    misses: list = []

    def reader():
        while not stop.is_set():
            try:
                if not t.contains_many(known[:2000]).all():
                    misses.append("contains_many")
                for b in known[:50]:
                    if b not in t or t.lookup(b) is None:
                        misses.append("lookup")
            except Exception as exc:  # noqa: BLE001
                misses.append(repr(exc))

    th = threading.Thread(target=reader)
    th.start()
    try:
        for k, b in enumerate(_ids(60_000, seed=7)):
            t.add(b, b"\x02" * 32, k, 10)
    finally:
        stop.set()
        th.join()
    assert misses == []
    assert len(t) == 65_000


def test_dedup_memory_at_100k_entries_is_under_32_bytes_each():
    ids = _ids(100_000, seed=5)
    packs = [i.to_bytes(32, "big") for i in range(100)]
    t = DedupTable()  # loaded from index segments, as a repository does
    for k in range(100):
        t.add_segment([packs[k]], _entries(ids[k * 1000 : (k + 1) * 1000]))
    t.compact()
    assert len(t) == 100_000
    assert t.memory_bytes() / len(t) <= 32
    t2 = DedupTable()  # filled blob by blob, as a write session does, then compacted
    for i, b in enumerate(ids):
        t2.add(b, packs[i % 100], i, 10)
    t2.compact()
    assert len(t2) == 100_000
    assert t2.memory_bytes() / len(t2) <= 32
    assert t2.lookup(ids[12345]) == (packs[45], 12345, 10)


# =================================================================== blob codec
def test_blob_codec_compressible_and_incompressible():
    codec = BlobCodec(AEAD, IDS)
    text = b"the quick brown fox jumps over the lazy dog\n" * 5000
    noise = os.urandom(300_000)
    for data, want_codec in ((text, CODEC_ZSTD), (noise, CODEC_RAW), (b"tiny", CODEC_RAW), (b"", CODEC_RAW)):
        bid = codec.blob_id(data)
        stored, c = codec.encode(bid, data)
        assert c == want_codec
        assert codec.decode(bid, stored) == data
    stored, _ = codec.encode(codec.blob_id(text), text)
    assert len(stored) < len(text) // 10
    stored, _ = codec.encode(codec.blob_id(noise), noise)
    assert len(stored) <= len(noise) + 12 + 16 + 1
    off = BlobCodec(AEAD, IDS, compression=False)
    assert off.encode(codec.blob_id(text), text)[1] == CODEC_RAW


def test_tampered_blob_is_an_integrity_error():
    codec = BlobCodec(AEAD, IDS)
    data = b"important data " * 1000
    bid = codec.blob_id(data)
    stored, _ = codec.encode(bid, data)
    for pos in (0, 12, len(stored) // 2, len(stored) - 1):
        bad = bytearray(stored)
        bad[pos] ^= 0x80
        with pytest.raises(IntegrityError):
            codec.decode(bid, bytes(bad))
    with pytest.raises(IntegrityError):
        codec.decode(bid, stored[:-1])
    other = codec.blob_id(b"other")
    with pytest.raises(IntegrityError):  # the blob id is bound as associated data
        codec.decode(other, stored)


def test_blob_whose_content_does_not_match_its_id_is_refused():
    codec = BlobCodec(AEAD, IDS)
    bid = codec.blob_id(b"claimed")
    stored, _ = codec.encode(bid, b"actual")  # sealed under the wrong id by a buggy writer
    with pytest.raises(IntegrityError, match="does not match its id"):
        codec.decode(bid, stored)
    assert codec.decode(bid, stored, verify=False) == b"actual"


# ==================================================================== snapshots
def _snap(i=0, **kw) -> Snapshot:
    d = dict(time_ns=1_700_000_000_000_000_000 + i * 10**9, host="h1", paths=["/src"], tree="ab" * 32)
    d.update(kw)
    return Snapshot(**d)


def test_snapshot_seal_unseal_round_trip():
    s = _snap(tags=["daily"], level="incremental", parent="p" * 64, base="b" * 64, chain="b" * 64,
              stats={"files": 3}, errors=["x"], partial=True)
    sid, stored = seal(AEAD, s)
    back = unseal(AEAD, sid, stored)
    assert back.id == sid
    back.id = ""
    assert back == s
    assert seal(AEAD, s)[0] != sid  # fresh nonce, fresh id


def test_tampered_snapshot_is_refused():
    sid, stored = seal(AEAD, _snap())
    bad = bytearray(stored)
    bad[30] ^= 1
    with pytest.raises(IntegrityError, match="tampered"):
        unseal(AEAD, sid, bytes(bad))
    import blake3

    renamed = blake3.blake3(bytes(bad)).hexdigest()  # even under a matching name: the tag fails
    with pytest.raises(IntegrityError):
        unseal(AEAD, renamed, bytes(bad))
    forged = AEAD.seal(b'{"time_ns": 1}', b"ebas-snapshot")  # authentic but malformed
    with pytest.raises(IntegrityError, match="malformed"):
        unseal(AEAD, blake3.blake3(forged).hexdigest(), forged)
    forged = AEAD.seal(_snap(level="weekly").encode(), b"ebas-snapshot")
    with pytest.raises(IntegrityError, match="level"):
        unseal(AEAD, blake3.blake3(forged).hexdigest(), forged)


def _with_ids(snaps, ids):
    for s, i in zip(snaps, ids):
        s.id = i
    return snaps


def test_select_by_prefix_and_ambiguity():
    snaps = _with_ids([_snap(0), _snap(1), _snap(2)], ["abc111" + "0" * 58, "abc222" + "0" * 58, "def333" + "0" * 58])
    assert select(snaps, "abc1").id.startswith("abc111")
    assert select(snaps, "DEF").id.startswith("def333")  # case-insensitive
    assert select(snaps, snaps[1].id) is snaps[1]
    with pytest.raises(AmbiguousSnapshot, match="2 snapshots"):
        select(snaps, "abc")
    with pytest.raises(SnapshotNotFound):
        select(snaps, "fff")
    with pytest.raises(SnapshotNotFound):
        select([], "latest")


def test_select_latest_with_filters():
    snaps = _with_ids([
        _snap(0, host="a", tags=["daily"], paths=["/x"]),
        _snap(5, host="b", tags=["daily", "db"], paths=["/y"]),
        _snap(3, host="a", tags=["weekly"], paths=["/x", "/y"]),
        _snap(4, host="a", tags=["daily", "db"], paths=["/y"]),
    ], ["a" * 64, "b" * 64, "c" * 64, "d" * 64])
    assert select(snaps, "latest").id == "b" * 64
    assert select(snaps, "latest", host="a").id == "d" * 64
    assert select(snaps, "latest", tags=["daily"]).id == "b" * 64
    assert select(snaps, "latest", host="a", tags=["daily"]).id == "d" * 64
    assert select(snaps, "latest", host="a", tags=["daily", "db"]).id == "d" * 64
    assert select(snaps, "latest", path="/x").id == "c" * 64
    assert select(snaps, "latest", host="a", path="/x", tags=["daily"]).id == "a" * 64
    with pytest.raises(SnapshotNotFound, match="host=c"):
        select(snaps, "latest", host="c")
    with pytest.raises(SnapshotNotFound):
        select(snaps, "b", host="a")  # the prefix exists but is filtered out
    assert [s.id[0] for s in filter_snapshots(snaps, host="a")] == ["a", "c", "d"]  # oldest first


def test_select_latest_breaks_time_ties_deterministically():
    snaps = _with_ids([_snap(0), _snap(0)], ["1" * 64, "2" * 64])
    assert select(snaps, "latest").id == "2" * 64
    assert select(list(reversed(snaps)), "latest").id == "2" * 64


# ======================================================================== trees
def _node(name: bytes, **kw) -> Node:
    d = dict(type=FILE, mode=0o644, uid=1000, gid=1000, user="u", group="g", mtime_ns=123456789123456789,
             ctime_ns=5, atime_ns=6, size=10, inode=77, dev=3)
    d.update(kw)
    return Node(name=name, **d)


def test_tree_round_trip_with_all_fields_and_invalid_utf8():
    nodes = [
        _node(b"plain.txt", content=IDS.blob_id(b"1") + IDS.blob_id(b"2"), xattrs={b"user.k": b"\xff\x00v"},
              acl_access=b"\x02\x00acl", link_group="3:77", nlink=2),
        _node(b"bad-\xff\xfe-name", size=0),
        _node(b"\xe9t\xe9", type=SYMLINK, target=b"/t\xff/x", size=0),
        _node(b"dir", type=DIR, subtree=IDS.blob_id(b"sub"), acl_default=b"\x02def"),
        _node(b"sparse", size=5 << 30, extents=[(1 << 30, 5, 1)], content=IDS.blob_id(b"hello")),
        _node(b"err", error="cannot read: Permission denied"),
        _node("ünïcødé".encode(), size=1),
    ]
    data = encode_tree(nodes)
    back = decode_tree(data)
    assert back == sorted(nodes, key=lambda n: n.name)
    assert [n.name for n in back] == sorted(n.name for n in nodes)
    assert back[[n.name for n in back].index(b"plain.txt")].chunk_ids == [IDS.blob_id(b"1"), IDS.blob_id(b"2")]


def test_tree_encoding_is_deterministic():
    nodes = [_node(b"b"), _node(b"a", xattrs={b"user.z": b"1", b"user.a": b"2"}), _node(b"c\xff")]
    shuffled = [nodes[2], nodes[0], nodes[1]]
    rebuilt = [_node(b"c\xff"), _node(b"a", xattrs={b"user.a": b"2", b"user.z": b"1"}), _node(b"b")]
    assert encode_tree(nodes) == encode_tree(shuffled) == encode_tree(rebuilt)
    assert encode_tree(decode_tree(encode_tree(nodes))) == encode_tree(nodes)
    assert encode_tree([_node(b"a", mtime_ns=1)]) != encode_tree([_node(b"a", mtime_ns=2)])


def test_tree_refuses_duplicate_names():
    with pytest.raises(ValueError):
        encode_tree([_node(b"x"), _node(b"x", size=3)])


@pytest.mark.parametrize("blob", [
    b"", b"not json", b"\xff\xfe", b"[]", b"{}", b'{"v":2,"nodes":[]}', b'{"v":1,"nodes":{}}',
    b'{"v":1,"nodes":[1]}', b'{"v":1,"nodes":[{"type":"file"}]}', b'{"v":1,"nodes":[{"name":"a"}]}',
    b'{"v":1,"nodes":[{"name":"a","type":"door"}]}', b'{"v":1,"nodes":[{"name":5,"type":"file"}]}',
    b'{"v":1,"nodes":[{"name_b":"!!","type":"file"}]}', b'{"v":1,"nodes":[{"name":"a","type":"file","content":"AAAA"}]}',
    b'{"v":1,"nodes":[{"name":"a","type":"file","content":5}]}',
    b'{"v":1,"nodes":[{"name":"a","type":"dir","subtree":"abcd"}]}',
    b'{"v":1,"nodes":[{"name":"a","type":"file","mode":"rwx"}]}',
    b'{"v":1,"nodes":[{"name":"a","type":"file","size":1e400}]}',
    b'{"v":1,"nodes":[{"name":"a","type":"file","extents":[[1,2]]}]}',
    b'{"v":1,"nodes":[{"name":"a","type":"file","extents":[[1e400,2,3]]}]}',
    b'{"v":1,"nodes":[{"name":"a","type":"file","xattrs":5}]}',
    b'{"v":1,"nodes":[{"name":"a","type":"file","user":7}]}',
    b'[' * 100_000 + b']' * 100_000,
])
def test_malformed_tree_is_an_integrity_error(blob):
    with pytest.raises(IntegrityError):
        decode_tree(blob)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.sampled_from(
        ["name", "name_b", "type", "mode", "size", "content", "subtree", "extents", "xattrs", "target",
         "user", "mtime", "link_group"]), kids, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(
    ["name", "name_b", "type", "mode", "size", "content", "subtree", "extents", "xattrs", "target", "user",
     "mtime", "link_group", "nlink"]), _json, max_size=6), max_size=3))
def test_property_arbitrary_tree_json_decodes_or_is_an_integrity_error(nodes):
    blob = json.dumps({"v": 1, "nodes": nodes}).encode()
    try:
        decoded = decode_tree(blob)
    except IntegrityError:
        return
    for n in decoded:  # anything accepted is well-typed and re-encodes
        assert isinstance(n.name, bytes) and isinstance(n.user, str) and isinstance(n.link_group, str)
        assert type(n.mode) is int and type(n.size) is int
    encode_tree(decoded) if len({n.name for n in decoded}) == len(decoded) else None


# ======================================================================= config
def test_config_round_trip_and_newer_version():
    cfg = RepoConfig(repo_id="r1", pack_size=1 << 20, created_ns=5)
    assert RepoConfig.decode(cfg.encode()) == cfg
    doc = json.loads(cfg.encode())
    doc["version"] = FORMAT_VERSION + 1
    with pytest.raises(UnsupportedFormat, match="newer"):
        RepoConfig.decode(json.dumps(doc).encode())
    for key, value in (("encryption", "rot13"), ("compression", {"algorithm": "lz4"})):
        bad = dict(json.loads(cfg.encode()), **{key: value})
        with pytest.raises(UnsupportedFormat):
            RepoConfig.decode(json.dumps(bad).encode())
    for blob in (b"", b"{", b"[]", b'{"version": 1}', json.dumps(dict(doc, version=1, pack_size=5)).encode()):
        with pytest.raises(IntegrityError):
            RepoConfig.decode(blob)


def test_repository_with_newer_format_refuses_to_open(repos):
    repo = repos.init()
    doc = json.loads(repo.store.get("config"))
    doc["version"] = FORMAT_VERSION + 1
    repo.store.put("config", json.dumps(doc).encode())
    with pytest.raises(UnsupportedFormat):
        repos.reopen(repo)


# ======================================================================== locks
def _mgr(store, clock, *, host="h1", pid=None, user="alice"):
    return LockManager(store, clock, FakeEntropy(random.randrange(1 << 30)), host=host,
                       pid=os.getpid() if pid is None else pid, user=user, heartbeat=None)


@pytest.fixture
def dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_reader_lock_is_shared_refused_under_repair_and_optional_without_write_rights():
    from ebas.storage.wrappers import AppendOnlyStore, ReadOnlyStore

    store, clock = MemoryStore(), FakeClock()
    with reader_lock(_mgr(store, clock), "restore abc") as lock:
        assert lock is not None and [i.operation for i in _mgr(store, clock).list()] == ["restore abc"]
        with reader_lock(_mgr(store, clock), "check"):  # readers share
            assert len(_mgr(store, clock).list()) == 2
    assert _mgr(store, clock).list() == []
    repair = _mgr(store, clock).acquire("repair index", exclusive=True)
    with pytest.raises(LockError, match="repair index"):
        with reader_lock(_mgr(store, clock), "restore abc"):
            pass
    repair.release()
    with reader_lock(_mgr(ReadOnlyStore(store), clock), "restore abc") as lock:
        assert lock is None  # a read-only mirror: the reader runs unlocked
    with reader_lock(_mgr(AppendOnlyStore(store), clock), "restore abc") as lock:
        assert lock is not None  # written; its deletion is refused, so it goes stale on its own
    assert [i.operation for i in _mgr(store, clock).list()] == ["restore abc"]


def test_shared_locks_coexist_and_exclusive_conflicts():
    store, clock = MemoryStore(), FakeClock()
    a = _mgr(store, clock, user="alice").acquire("backup /a")
    b = _mgr(store, clock, user="bob").acquire("backup /b")
    assert len(_mgr(store, clock).list()) == 2
    with pytest.raises(LockError) as err:
        _mgr(store, clock, user="carol").acquire("prune", exclusive=True)
    assert "@h1" in err.value.message and "backup /" in err.value.message and f"pid {os.getpid()}" in err.value.message
    assert err.value.exit_code == 11
    assert len(_mgr(store, clock).list()) == 2  # the refused lock removed itself
    a.release()
    b.release()
    ex = _mgr(store, clock, user="carol").acquire("prune", exclusive=True)
    with pytest.raises(LockError, match="exclusive lock .* carol@h1 .*prune"):
        _mgr(store, clock).acquire("backup /c")
    ex.release()
    ex.release()  # idempotent
    assert _mgr(store, clock).list() == []


def test_stale_by_heartbeat_age():
    store, clock = MemoryStore(), FakeClock()
    other_host = _mgr(store, clock, host="elsewhere", pid=1)
    held = other_host.acquire("prune", exclusive=True)
    me = _mgr(store, clock)
    assert not me.is_stale(me.list()[0])
    with pytest.raises(LockError):
        me.acquire("backup")
    clock.advance(29 * 60)
    assert not me.is_stale(me.list()[0])
    assert me.remove_stale() == []
    clock.advance(2 * 60)  # heartbeat now 31 minutes old
    assert me.is_stale(me.list()[0])
    me.acquire("backup").release()  # a stale exclusive lock does not block
    removed = me.remove_stale()
    assert [lk.id for lk in removed] == [held.id]
    assert me.list() == []


def test_heartbeat_refresh_keeps_lock_live():
    store, clock = MemoryStore(), FakeClock()
    held = _mgr(store, clock, host="elsewhere").acquire("backup")
    me = _mgr(store, clock)
    for _ in range(10):
        clock.advance(10 * 60)
        held.write()  # what the heartbeat thread does
        assert me.remove_stale() == []
    assert len(me.list()) == 1


def test_stale_by_dead_pid_on_this_host(dead_pid):
    store, clock = MemoryStore(), FakeClock()
    _mgr(store, clock, pid=dead_pid).acquire("backup")
    me = _mgr(store, clock)
    assert me.is_stale(me.list()[0])
    me.acquire("prune", exclusive=True).release()  # the dead holder does not block
    # the same pid on another host says nothing about that host's process
    _mgr(store, clock, host="other", pid=dead_pid).acquire("backup")
    removed = me.remove_stale()
    assert [lk.pid for lk in removed] == [dead_pid]
    assert [lk.host for lk in me.list()] == ["other"]


def test_remove_stale_never_removes_a_live_lock(dead_pid):
    store, clock = MemoryStore(), FakeClock()
    live_other = _mgr(store, clock, pid=os.getppid()).acquire("backup")   # live process, this host
    live_self = _mgr(store, clock).acquire("backup")                       # this very process
    remote = _mgr(store, clock, host="remote", pid=dead_pid).acquire("backup")  # fresh heartbeat elsewhere
    dead = _mgr(store, clock, pid=dead_pid).acquire("backup")
    store.put("locks/garbage", b"not json")
    removed = {lk.id for lk in _mgr(store, clock).remove_stale()}
    assert dead.id in removed and "garbage" in removed
    left = {lk.id for lk in _mgr(store, clock).list()}
    assert left == {live_other.id, live_self.id, remote.id}


def test_lock_heartbeat_thread_rewrites_the_lock():
    import time

    store = MemoryStore()
    mgr = LockManager(store, FakeClock(), FakeEntropy(5), host="h", pid=os.getpid(), user="u", heartbeat=0.05)
    lock = mgr.acquire("backup")
    first = mgr.list()[0].heartbeat_ns
    mgr.clock.advance(100)
    deadline = time.monotonic() + 5
    while mgr.list()[0].heartbeat_ns == first and time.monotonic() < deadline:
        time.sleep(0.02)
    assert mgr.list()[0].heartbeat_ns > first
    lock.release()
    assert mgr.list() == []
