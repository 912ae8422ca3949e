"""Authentic but malformed objects: every decoder checks types and ranges.

The key proves who wrote an object, not that it is well formed. Random JSON values in
every field of every object kind (and random bytes for the binary codecs), sealed with
the right key, must either decode into values of the documented types or raise
``MalformedObject`` / ``IntegrityError`` for that object: never a ``TypeError`` later.
"""

from __future__ import annotations

import base64
import json
import math

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ebas.crypto.aead import Aead
from ebas.errors import IntegrityError, MalformedObject
from ebas.repo import holds, locks, prunestate, snapshots, tree
from ebas.repo.config import RepoConfig
from ebas.repo.index import IndexSegment
from ebas.repo.pack import decode_header
from ebas.runtime import SYSTEM_ENTROPY

AEAD = Aead(b"k" * 32, SYSTEM_ENTROPY)
H = "ab" * 32
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20) | st.just(H) | st.just(""),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def mutated(valid: dict) -> st.SearchStrategy:
    """``valid`` with one field replaced by, or one field added as, a random JSON value,
    or one field removed; sometimes a whole random value instead."""
    keys = sorted(valid)

    def replace(args):
        key, value, action = args
        d = dict(valid)
        if action == "drop":
            d.pop(key, None)
        else:
            d[key] = value
        return d

    one = st.tuples(st.sampled_from(keys) | st.text(max_size=8), json_values,
                    st.sampled_from(["set", "set", "drop"])).map(replace)
    return one | json_values


def dumps(v) -> bytes:
    return json.dumps(v, allow_nan=True).encode()


# ------------------------------------------------------------------ snapshots
VALID_SNAPSHOT = snapshots.Snapshot(time_ns=1_700_000_000 * 10**9, host="h", paths=["/data"], tree=H,
                                    tags=["daily"], parent=H, base=H, chain=H,
                                    stats={"files": 3, "bytes_logical": 7, "synthetic": True, "synthesized_from": H},
                                    errors=["x"], holds=[{"type": "hold", "reason": "r", "until_ns": 0}])


def _use_snapshot(s: snapshots.Snapshot) -> None:
    """What listing, selection, retention and JSON output do with a snapshot."""
    assert type(s.time_ns) is int and s.time_iso
    assert all(type(p) is str for p in s.paths) and all(type(t) is str for t in s.tags)
    assert len(bytes.fromhex(s.tree)) == 32
    json.dumps(s.to_json())
    snapshots.filter_snapshots([s], host=s.host, tags=s.tags or None, path=s.paths[0] if s.paths else None)
    snapshots.same_source(s, "h", ["/x"])
    sum(int(v) for k, v in s.stats.items() if k.startswith(("files", "bytes")))
    assert all(v is None or isinstance(v, (bool, int, float, str)) for v in s.stats.values())
    for h in s.holds:
        assert isinstance(h.get("type"), str) and type(h.get("until_ns", 0)) is int


@SETTINGS
@given(mutated(json.loads(VALID_SNAPSHOT.encode())))
def test_snapshot_decoder_accepts_only_well_formed_manifests(doc):
    stored = AEAD.seal(dumps(doc), snapshots.AAD)
    import blake3

    sid = blake3.blake3(stored).hexdigest()
    try:
        s = snapshots.unseal(AEAD, sid, stored)
    except MalformedObject as exc:
        assert exc.kind == "snapshot" and sid[:12] in exc.message
        return
    _use_snapshot(s)


@pytest.mark.parametrize("field, value, why", [
    ("time_ns", "yesterday", "integer"), ("paths", None, "list"), ("tree", 5, "root tree"),
    ("time_ns", 1.5, "integer"), ("time_ns", -1, "range"), ("time_ns", 2**70, "range"),
    ("paths", [1], "strings"), ("tags", {"a": 1}, "list"), ("partial", "no", "true or false"),
    ("stats", {"files": "many"}, "number"), ("holds", [5], "object"), ("holds", [{"type": "x"}], "unknown"),
    ("level", ["full"], "string"), ("host", None, "string"),
])
def test_named_snapshot_defects_are_malformed_object_errors(field, value, why):
    doc = json.loads(VALID_SNAPSHOT.encode())
    doc[field] = value
    with pytest.raises(MalformedObject, match=why) as info:
        snapshots.Snapshot.decode(json.dumps(doc).encode(), "f" * 64)
    assert info.value.exit_code == 13 and "snapshot ffffffffffff" in info.value.message


# ---------------------------------------------------------------------- trees
VALID_NODES = [
    tree.Node(name=b"file", type="file", mode=0o644, uid=1000, gid=1000, size=64, mtime_ns=5, ctime_ns=6,
              content=b"\x01" * 64, xattrs={b"user.a": b"b"}, extents=[(0, 64, 2)]),
    tree.Node(name=b"dir\xff", type="dir", mode=0o755, subtree=b"\x02" * 32),
    tree.Node(name=b"link", type="symlink", target=b"file"),
]
VALID_ENTRY = tree.Node(name=b"f", type="file", mode=0o600, size=32, content=b"\x03" * 32, nlink=2,
                        link_group="1:2", user="u", group="g", xattrs={b"k": b"v"}, extents=[(0, 32, 1)],
                        acl_access=b"acl").to_dict()


def _use_nodes(nodes: list[tree.Node]) -> None:
    """What restore, dump, check and the catalog do with tree nodes."""
    for n in nodes:
        assert type(n.name) is bytes and n.name and n.type in tree.NODE_TYPES
        assert 0 <= n.mode <= 0o7777 and n.size >= 0 and 0 <= n.uid < 2**32 and 0 <= n.gid < 2**32
        for v in (n.mtime_ns, n.ctime_ns, n.atime_ns):
            assert -(2**63) <= v < 2**63
        assert all(type(k) is bytes and type(v) is bytes for k, v in n.xattrs.items())
        assert all(len(e) == 3 and all(type(x) is int and x >= 0 for x in e) for e in n.extents)
        assert len(n.subtree) in (0, 32) and len(n.content) % 32 == 0
        n.chunk_ids, n.display_name
    try:
        tree.encode_tree(nodes)
    except ValueError as exc:  # duplicate names are the business of the tree validator
        assert "duplicate" in str(exc)


@SETTINGS
@given(mutated(VALID_ENTRY))
def test_tree_entry_decoder_accepts_only_well_formed_entries(entry):
    data = json.dumps({"v": 1, "nodes": [entry]}, allow_nan=True).encode()
    try:
        nodes = tree.decode_tree(data)
    except MalformedObject as exc:
        assert exc.exit_code == 13
        return
    _use_nodes(nodes)


@SETTINGS
@given(mutated({"v": 1, "nodes": [n.to_dict() for n in VALID_NODES]}))
def test_tree_decoder_accepts_only_well_formed_trees(doc):
    try:
        nodes = tree.decode_tree(dumps(doc))
    except MalformedObject:
        return
    _use_nodes(nodes)


@SETTINGS
@given(st.binary(max_size=200))
def test_tree_decoder_on_random_bytes(data):
    try:
        _use_nodes(tree.decode_tree(data))
    except MalformedObject:
        pass


@pytest.mark.parametrize("field, value", [
    ("mode", 0.5), ("mode", 2**40), ("mode", -1), ("size", -5), ("size", 2**64), ("uid", True),
    ("mtime", 2**64), ("subtree", 7), ("subtree", "zz"), ("extents", [[0, -1, 1]]), ("extents", [[0.5, 1, 1]]),
    ("xattrs", [["a"]]), ("name", "\ud800"), ("name", 5), ("type", None), ("content", "!!"), ("nlink", "2"),
])
def test_named_tree_entry_defects_are_malformed_object_errors(field, value):
    entry = dict(VALID_ENTRY)
    entry[field] = value
    with pytest.raises(MalformedObject):
        tree.decode_tree(json.dumps({"v": 1, "nodes": [entry]}).encode())


# ------------------------------------------------------- holds, prune, locks
@SETTINGS
@given(mutated({"type": "retain", "created_ns": 5, "host": "h", "user": "u", "reason": "r", "snapshot": H,
                "until_ns": 9, "hold": "", "min_retention_ns": 0}))
def test_hold_record_decoder(doc):
    try:
        rec = holds.HoldRecord.decode(dumps(doc), H)
    except MalformedObject:
        return
    state = holds.HoldState.from_records([rec, holds.HoldRecord(type="hold", created_ns=1, snapshot=H, id="x")])
    sorted(state.records, key=lambda r: (r.created_ns, r.id))
    assert rec.type in holds.TYPES and all(type(getattr(rec, k)) is int for k in ("created_ns", "until_ns"))


@SETTINGS
@given(mutated({"version": 1, "created_ns": 5, "host": "h", "pid": 3, "packs": [H], "segments": ["index/" + H],
                "compacted": "", "snapshots": [H], "waiting_for": None, "phase": "marked"}))
def test_prune_record_decoder(doc):
    try:
        rec = prunestate.decode(dumps(doc), "prune/x")
    except MalformedObject:
        return
    assert all(len(p) == 32 for p in rec.pack_ids) and type(rec.created_ns) is int
    assert rec.waiting_for is None or all(type(w) is str for w in rec.waiting_for)
    assert all(n.startswith("index/") for n in rec.segments + ([rec.compacted] if rec.compacted else []))


@pytest.mark.parametrize("field, value", [("segments", ["keys/" + H]), ("segments", ["snapshots/" + H]),
                                          ("compacted", "config"), ("packs", ["../x"])])
def test_a_prune_record_cannot_name_objects_other_than_packs_and_index_segments(field, value):
    doc = {"version": 1, "created_ns": 5, "packs": [H], "segments": ["index/" + H], "compacted": "index/" + H}
    doc[field] = value
    with pytest.raises(MalformedObject):
        prunestate.decode(json.dumps(doc).encode(), "prune/x")


@SETTINGS
@given(mutated({"host": "h", "pid": 3, "user": "u", "operation": "backup", "exclusive": False,
                "created_ns": 1, "heartbeat_ns": 2}))
def test_lock_decoder(doc):
    try:
        info = locks.decode_lock("l1", dumps(doc))
    except MalformedObject:
        return
    assert info.describe(10**18) and 0 <= info.pid < 2**31 and type(info.heartbeat_ns) is int


# ---------------------------------------------------------------------- config
VALID_CONFIG = json.loads(RepoConfig(repo_id="r" * 32, object_lock={"mode": "governance", "days": 7}).encode())


@SETTINGS
@given(st.one_of(mutated(VALID_CONFIG), *[mutated(VALID_CONFIG[k]).map(lambda v, k=k: dict(VALID_CONFIG, **{k: v}))
                                          for k in ("chunker", "compression", "object_lock")]))
def test_config_decoder(doc):
    try:
        cfg = RepoConfig.decode(dumps(doc))
    except IntegrityError as exc:  # MalformedObject, or an invalid pack size
        assert exc.exit_code == 13
        return
    except Exception as exc:  # noqa: BLE001 - only the documented refusals
        from ebas.errors import UnsupportedFormat

        assert isinstance(exc, UnsupportedFormat), repr(exc)
        return
    assert type(cfg.pack_size) is int and cfg.chunker.min_size <= cfg.chunker.max_size
    if cfg.object_lock is not None:
        assert cfg.object_lock["mode"] in ("governance", "compliance") and cfg.object_lock["days"] > 0


@SETTINGS
@given(st.dictionaries(st.sampled_from(["min", "avg", "max", "algorithm", "fixed_rules"]), json_values))
def test_config_chunker_field(chunker):
    doc = dict(VALID_CONFIG, chunker=chunker)
    try:
        RepoConfig.decode(dumps(doc))
    except MalformedObject:
        pass


# ------------------------------------------------------------ binary codecs
@SETTINGS
@given(st.binary(max_size=400), st.booleans())
def test_index_segment_decoder_on_random_authentic_bytes(plain, compress):
    body = zstandard.ZstdCompressor().compress(plain) if compress else plain
    with pytest.raises(IntegrityError):
        IndexSegment.decode(AEAD, AEAD.seal(body, b"ebas-index"), "index/x")


@SETTINGS
@given(st.binary(max_size=400), st.integers(min_value=0, max_value=2**40))
def test_pack_header_decoder_on_random_authentic_bytes(plain, offset):
    from ebas.repo.pack import HEADER_AAD

    try:
        entries = decode_header(AEAD, AEAD.seal(plain, HEADER_AAD), offset)
    except IntegrityError:
        return
    assert sum(e.length for e in entries) == offset


@SETTINGS
@given(json_values)
def test_master_key_plaintext_decoder(doc):
    from ebas.errors import EbasError
    from ebas.repo.keys import MasterKey

    try:
        MasterKey._from_plaintext(dumps(doc))
    except (ValueError, KeyError, TypeError, EbasError):
        pass  # _try_open turns each of these into KeyFileError (exit 12)


def test_valid_objects_still_decode():
    sid_doc = VALID_SNAPSHOT.encode()
    s = snapshots.Snapshot.decode(sid_doc, H)
    assert s.paths == ["/data"] and s.holds[0]["type"] == "hold"
    assert [n.name for n in tree.decode_tree(tree.encode_tree(VALID_NODES))] == sorted(n.name for n in VALID_NODES)
    assert RepoConfig.decode(RepoConfig(repo_id="x" * 32).encode()).repo_id == "x" * 32
    assert math.isfinite(1.0) and base64.b64encode(b"") == b""


def test_malformed_object_error_names_the_object_and_survives_pickling():
    import pickle

    err = MalformedObject("snapshot", "abc123", "field 'paths' must be a list, found null")
    assert isinstance(err, IntegrityError) and err.exit_code == 13
    assert err.message == "snapshot abc123 is malformed: field 'paths' must be a list, found null"
    back = pickle.loads(pickle.dumps(err))
    assert (back.kind, back.name, back.problem, back.hint) == (err.kind, err.name, err.problem, err.hint)
