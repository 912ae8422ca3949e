"""Exchange between sites: export/import snapshot by snapshot, idempotent, order-independent, tombstones."""

from __future__ import annotations

import io
import itertools
import os

import pytest
from catalog_helpers import canonical, hit_keys, open_for

from ebas.catalog import CatalogError, FindQuery, open_catalog
from ebas.errors import UsageError


def _export(cat, since=0) -> bytes:
    buf = io.BytesIO()
    cat.export(buf, since=since)
    return buf.getvalue()


def _import(cat, data: bytes):
    return cat.import_(io.BytesIO(data))


@pytest.fixture
def site_a(builder, new_location, wait):
    """Site A's catalog of a repository with history, exported in three pieces."""
    b = builder
    b.write("src/a.txt", "a")
    b.write("src/web/index.html", "home")
    with open(os.path.join(b.path("src/web"), os.fsdecode(b"odd\xfe.txt")), "wb") as fh:
        fh.write(b"raw name")
    for k in range(3):
        b.write("src/counter.txt", str(k))
        wait()
        b.backup(["src"], k)
    cat = open_for(b, new_location(), site="a")
    cat.sync(b.repo)
    piece1 = _export(cat)
    mark1 = cat.mark
    for k in range(3, 5):
        b.write("src/counter.txt", str(k))
        if k == 4:
            b.remove("src/web/index.html")
        wait()
        b.backup(["src"], k, host="alpha" if k % 2 else "beta")
    cat.sync(b.repo)
    piece2 = _export(cat, since=mark1)
    mark2 = cat.mark
    b.repo.delete_snapshot(b.snaps[1].id)
    b.repo.delete_snapshot(b.snaps[3].id)
    cat.sync(b.repo)
    piece3 = _export(cat, since=mark2)
    yield cat, [piece1, piece2, piece3]
    cat.close()


def _content(cat):
    return canonical(cat), {s.snap_id for s in cat.snapshots()}


def test_export_import_reproduces_the_catalog(site_a, new_location):
    a, pieces = site_a
    b = open_catalog(new_location(), repo_id=a.repo_id, site="b")
    full = _export(a)
    st = _import(b, full)
    assert st.snapshots_added == len(a.snapshots()) and st.trees_read > 0
    assert _content(b) == _content(a)
    assert hit_keys(b.find(FindQuery("odd")).hits) == hit_keys(a.find(FindQuery("odd")).hits) != set()
    assert {s for snap in b.snapshots() for s in snap.sites} == {"a"}  # every row knows its site
    b.close()


def test_import_is_idempotent(site_a, new_location):
    a, pieces = site_a
    b = open_catalog(new_location(), repo_id=a.repo_id, site="b")
    for p in pieces:
        _import(b, p)
    before, mark, stats = _content(b), b.mark, b.stats()
    for p in pieces + pieces:
        st = _import(b, p)
        assert st.snapshots_added == 0 and st.sites_added == 0 and st.tombstones_added == 0
    assert _content(b) == before and b.mark == mark and b.stats()["versions"] == stats["versions"]
    b.close()


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_import_order_does_not_matter(site_a, new_location, order):
    a, pieces = site_a
    b = open_catalog(new_location(), repo_id=a.repo_id, site="b")
    for i in order:
        _import(b, pieces[i])
    assert _content(b) == _content(a)
    assert b.db.one("SELECT count(*) FROM tombstones") == 2
    b.close()


def test_tombstone_of_one_site_leaves_snapshots_another_site_holds(site_a, builder, new_location):
    a, pieces = site_a
    b = open_for(builder, new_location(), site="b")
    _import(b, pieces[0])  # holds snapshot 1 from site a
    b.sync(builder.repo)  # ... and its own repository no longer has snapshot 1
    gone = builder.snaps[1].id
    assert gone not in {s.snap_id for s in b.snapshots()} or "b" not in \
        next(s for s in b.snapshots() if s.snap_id == gone).sites
    _import(b, pieces[2])  # site a forgot it too: now nobody holds it
    assert gone not in {s.snap_id for s in b.snapshots()}
    kept = builder.snaps[0].id
    assert set(next(s for s in b.snapshots() if s.snap_id == kept).sites) == {"a", "b"}
    b.close()


def test_truncated_or_foreign_exports_are_refused(site_a, new_location):
    a, pieces = site_a
    full = _export(a)
    import zstandard

    raw = zstandard.ZstdDecompressor().decompress(full, max_output_size=1 << 30)
    lines = raw.splitlines(keepends=True)
    cut = zstandard.ZstdCompressor().compress(b"".join(lines[:-1]))
    b = open_catalog(new_location(), repo_id=a.repo_id, site="b")
    with pytest.raises(CatalogError):
        _import(b, cut)
    partial = {s.snap_id for s in b.snapshots()}
    assert partial == {s.snap_id for s in a.snapshots()}  # every complete record before the cut arrived
    _import(b, full)
    assert _content(b) == _content(a)
    with pytest.raises(UsageError):
        _import(b, b"not an export")
    other = open_catalog(new_location(), repo_id="someotherrepo", site="c")
    with pytest.raises(UsageError):
        _import(other, full)
    b.close()
    other.close()
