"""Every query type, on both engines, checked against a brute-force walk of every snapshot."""

from __future__ import annotations

import fnmatch
import os
import re
import time

import pytest
from catalog_helpers import DAY, T0, RepoBuilder, brute_force, fact_keys, hit_keys, open_for

from ebas.catalog import FindQuery, QueryRejected, file_digest
from ebas.catalog.query import SnapshotIndex
from ebas.errors import AmbiguousSnapshot, SnapshotNotFound, UsageError

OLD = T0 - 400 * DAY
RECENT = T0 - 2 * DAY
ODD_NAMES = ["100%_done.txt", "under_score.txt", "it's; DROP TABLE names;--.txt", "[draft] plan.txt",
             'quote"d.txt', "back\\slash.txt", "Résumé.PDF", "star*name.txt", "percent%.log"]


def _populate(b: RepoBuilder) -> None:
    w = b.write
    w("srv/www/index.html", "<html>home</html>", mtime=OLD)
    w("srv/www/docs/index.html", "<html>home</html>", mtime=OLD)
    w("srv/www/blog/index.html", "<html>blog</html>", mtime=RECENT)
    w("srv/www/blog/post-2023.md", "post", mtime=RECENT)
    w("srv/www/README", "www readme", mtime=OLD)
    w("srv/README", "top readme", mtime=OLD)
    w("srv/logs/app.log", "line 1\n", mtime=RECENT)
    w("srv/logs/app.log.1", "older\n", mtime=OLD)
    w("srv/logs/error.log", "boom\n", mtime=RECENT)
    w("srv/data/big.bin", os.urandom(2 << 20), mtime=OLD)
    w("srv/data/medium.bin", os.urandom(200 << 10), mtime=OLD)
    w("srv/data/empty.dat", b"", mtime=OLD)
    for i, name in enumerate(ODD_NAMES):
        w(f"srv/odd/{name}", f"odd {i}", mtime=OLD)
    with open(os.path.join(b.path("srv/odd"), os.fsdecode(b"bad\xff.bin")), "wb") as fh:
        fh.write(b"not utf-8 name")
    w("srv/bin/tool", "#!/bin/sh\n", mode=0o4755, mtime=OLD)
    w("srv/bin/helper", "#!/bin/sh\n", mode=0o2755, mtime=OLD)
    w("srv/tmp/open.txt", "anyone", mode=0o666, mtime=RECENT)
    p = w("srv/home/nobody.txt", "owned by nobody", mtime=OLD)
    if os.geteuid() == 0:
        os.chown(p, 65534, 65534)
    os.symlink("docs", b.path("srv/www/current"))
    w("other/index.html", "<html>other</html>", mtime=OLD)
    w("other/README.md", "other readme", mtime=OLD)
    w("other/notes/meeting.txt", "v1", mtime=RECENT)


def _history(b: RepoBuilder) -> None:
    b.backup(["srv"], 0, tags=["daily", "weekly"])
    b.backup(["other"], 0.5, host="beta", tags=["daily"])
    b.write("srv/logs/app.log", "line 1\nline 2\n", mtime=RECENT + 1)
    b.write("srv/logs/app.log.2", "rotated\n", mtime=RECENT)
    b.backup(["srv"], 1, tags=["daily"])
    b.backup(["srv/www"], 1.5, tags=["web"])
    b.remove("srv/www/blog")
    b.remove("srv/logs/error.log")
    b.backup(["srv"], 2, tags=["daily"])
    b.write("other/notes/meeting.txt", "v2 longer", mtime=RECENT + 5)
    b.backup(["other"], 2.5, host="beta", tags=["daily"])
    os.chmod(b.path("srv/tmp/open.txt"), 0o644)
    b.write("srv/data/big.bin", os.urandom(3 << 20), mtime=RECENT)
    b.backup(["srv"], 3, tags=["daily", "weekly"])
    b.backup(["srv/www"], 3.5, tags=["web"])
    b.write("srv/logs/error.log", "boom again\n", mtime=RECENT + 9)
    b.backup(["srv"], 4, tags=["daily"])
    b.backup(["other"], 4.5, host="beta", tags=["daily"])
    b.backup(["srv"], 5, tags=["daily"])


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    b = RepoBuilder(str(tmp_path_factory.mktemp("catalog-queries") / "data"))
    _populate(b)
    _history(b)
    facts = brute_force(b.repo)
    yield b, facts
    b.close()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def cat(request, dataset, tmp_path_factory):
    b, _ = dataset
    if request.param == "sqlite":
        loc = str(tmp_path_factory.mktemp("cat") / "catalog.sqlite")
    else:
        loc = request.getfixturevalue("pg_url") + f"?schema=q{os.getpid()}"
    c = open_for(b, loc)
    res = c.sync(b.repo)
    assert len(res.added) == len(b.snaps)
    yield c
    if request.param == "postgres":
        c.db.drop_schema()
    c.close()


def _rel(b, facts, pred):
    return fact_keys(f for f in facts if pred(f))


def _find(cat, **kw):
    res = cat.find(FindQuery(**kw))
    assert res.freshness.checked and res.freshness.not_indexed == [] and not res.truncated
    return hit_keys(res.hits)


def test_dataset_covers_what_the_tests_need(dataset):
    b, facts = dataset
    assert len(b.snaps) == 11
    assert any(f.deleted_in for f in facts)
    unchanged = [f for f in facts if f.path.endswith("srv/README")]
    assert len(unchanged) == 1 and len(unchanged[0].holders) == 6


@pytest.mark.parametrize("pattern,mode,icase", [
    ("index", "auto", False),
    ("INDEX", "auto", True),
    ("README", "auto", False),
    ("readme", "auto", True),
    ("log", "auto", False),
    ("*.log", "auto", False),
    ("*.LOG", "auto", True),
    ("app.log.?", "auto", False),
    ("[a-e]*", "auto", False),
    ("[!a-z]*", "auto", False),
    ("README", "exact", False),
    ("readme.md", "exact", True),
    ("index.html", "exact", False),
    (r"^app\.log(\.\d+)?$", "regex", False),
    (r"\.(md|txt)$", "regex", False),
    ("résumé", "auto", True),
    ("ta", "auto", False),
    ("x", "auto", False),
])
def test_name_patterns_match_brute_force(cat, dataset, pattern, mode, icase):
    b, facts = dataset
    if mode == "regex":
        pred = lambda f: re.search(pattern, f.name, re.I if icase else 0) is not None  # noqa: E731
    elif mode == "exact":
        pred = lambda f: (f.name.lower() == pattern.lower()) if icase else f.name == pattern  # noqa: E731
    elif any(c in pattern for c in "*?["):
        pred = (lambda f: fnmatch.fnmatchcase(f.name.lower(), pattern.lower())) if icase else \
            (lambda f: fnmatch.fnmatchcase(f.name, pattern))
    else:
        pred = (lambda f: pattern.lower() in f.name.lower()) if icase else (lambda f: pattern in f.name)
    want = _rel(b, facts, pred)
    assert want, "the data set should have matches for every pattern"
    assert _find(cat, pattern=pattern, match=mode, ignore_case=icase) == want


@pytest.mark.parametrize("name", ODD_NAMES + ["bad\\xff.bin"])
def test_sql_metacharacters_are_plain_characters(cat, dataset, name):
    b, facts = dataset
    want = _rel(b, facts, lambda f: f.name == name)
    assert len(want) == 1
    assert _find(cat, pattern=name, match="exact") == want
    assert _find(cat, pattern=name, match="substring") == _rel(b, facts, lambda f: name in f.name)


@pytest.mark.parametrize("pattern", ["%", "_", "'", "';--", '"', "\\", "%_%", "' OR 1=1 --", "*%*", "[%]*"])
def test_injection_shaped_patterns_match_literally(cat, dataset, pattern):
    b, facts = dataset
    if any(c in pattern for c in "*?["):
        pred = lambda f: fnmatch.fnmatchcase(f.name, pattern)  # noqa: E731
    else:
        pred = lambda f: pattern in f.name  # noqa: E731
    assert _find(cat, pattern=pattern) == _rel(b, facts, pred)
    assert int(cat.db.one("SELECT count(*) FROM names")) > 0  # nothing was dropped


def test_path_prefix_and_size(cat, dataset):
    b, facts = dataset
    www = b.path("srv/www")
    assert _find(cat, path=www) == _rel(b, facts, lambda f: f.path.startswith(www + "/"))
    assert _find(cat, path=www + "/", pattern="index") == \
        _rel(b, facts, lambda f: f.path.startswith(www + "/") and "index" in f.name)
    big = _find(cat, min_size=1 << 20)
    assert big == _rel(b, facts, lambda f: f.type == 0 and f.size >= 1 << 20) and len(big) == 2
    assert _find(cat, path=b.path("srv/data"), min_size=100 << 10, max_size=1 << 20) == \
        _rel(b, facts, lambda f: f.path.startswith(b.path("srv/data") + "/") and f.type == 0
             and (100 << 10) <= f.size <= (1 << 20))


def test_times_owner_mode(cat, dataset):
    b, facts = dataset
    assert _find(cat, newer=T0 - 30 * DAY) == _rel(b, facts, lambda f: f.mtime >= T0 - 30 * DAY)
    assert _find(cat, older=T0 - 30 * DAY, pattern="README") == \
        _rel(b, facts, lambda f: f.mtime < T0 - 30 * DAY and "README" in f.name)
    assert _find(cat, mode="world-writable") == _rel(b, facts, lambda f: f.type != 2 and f.mode & 0o002)
    srv = b.path("srv")
    ww = _find(cat, mode="world-writable", path=srv)
    assert ww == _rel(b, facts, lambda f: f.type != 2 and f.mode & 0o002 and f.path.startswith(srv + "/"))
    assert len(ww) == 1
    su = _find(cat, mode="setuid")
    assert su == _rel(b, facts, lambda f: f.type != 2 and f.mode & 0o4000) and len(su) == 1
    assert _find(cat, mode="-2000") == _rel(b, facts, lambda f: f.type != 2 and f.mode & 0o2000 == 0o2000)
    assert _find(cat, mode="644") == _rel(b, facts, lambda f: f.type != 2 and f.mode & 0o7777 == 0o644)
    if os.geteuid() == 0:
        assert _find(cat, owner="nobody") == _rel(b, facts, lambda f: f.user == "nobody") != set()
        assert _find(cat, owner="65534") == _rel(b, facts, lambda f: f.uid == 65534)
    assert _find(cat, types=["l"]) == _rel(b, facts, lambda f: f.type == 2) != set()
    assert _find(cat, types=["dir"], path=b.path("srv/www")) == \
        _rel(b, facts, lambda f: f.type == 1 and f.path.startswith(b.path("srv/www") + "/"))


def test_host_source_tag_between(cat, dataset):
    b, facts = dataset
    assert _find(cat, hosts=["beta"]) == _rel(b, facts, lambda f: f.host == "beta") != set()
    www = b.path("srv/www")
    assert _find(cat, sources=[www]) == _rel(b, facts, lambda f: www in f.source)
    weekly = {s.id for s in b.snaps if "weekly" in s.tags}
    assert _find(cat, tags=["weekly"], pattern="log") == \
        _rel(b, facts, lambda f: "log" in f.name and any(h.id in weekly for h in f.holders))
    lo, hi = T0 + int(1.2 * DAY), T0 + int(2.7 * DAY)
    inside = {s.id for s in b.snaps if lo <= s.time_ns <= hi}
    assert _find(cat, between=(lo, hi)) == _rel(b, facts, lambda f: any(h.id in inside for h in f.holders))
    res = cat.find(FindQuery(pattern="meeting", between=(lo, hi)))
    for h in res.hits:  # the snapshot shown is one inside the range
        assert h.snapshot in inside


def test_deleted_with_the_snapshot_where_it_vanished(cat, dataset):
    b, facts = dataset
    res = cat.find(FindQuery(deleted=True))
    want = {f.key() + (f.deleted_in.id,) for f in facts if f.deleted_in is not None}
    got = {(h.path, h.host, h.first_snapshot, h.last_snapshot, h.snapshot_count, h.deleted_in) for h in res.hits}
    assert got == want
    paths = {h.path for h in res.hits}
    assert b.path("srv/www/blog/index.html") in paths and b.path("srv/logs/error.log") in paths
    late = {s.id for s in b.snaps if s.time_ns >= T0 + 3 * DAY}
    got = _find(cat, deleted=True, between=(T0 + 3 * DAY, T0 + 10 * DAY))
    assert got == {f.key() for f in facts if f.deleted_in is not None and f.deleted_in.id in late}


def test_same_content_by_digest_and_by_local_file(cat, dataset):
    b, facts = dataset
    home = next(f for f in facts if f.path == b.path("srv/www/index.html"))
    want = _rel(b, facts, lambda f: f.digest == home.digest)
    assert len({p for p, *_ in want}) >= 2  # the same page lives in several places
    assert _find(cat, digest=home.digest) == want
    assert _find(cat, digest=file_digest(b.repo, b.path("srv/www/docs/index.html"))) == want
    hit = cat.find(FindQuery(digest=home.digest)).hits[0]
    assert hit.digest == home.digest.hex()
    with pytest.raises(UsageError):
        file_digest(b.repo, b.path("srv/data/empty.dat"))


def test_limit_and_sort(cat, dataset):
    b, facts = dataset
    res = cat.find(FindQuery(pattern="index", limit=2, sort="path"))
    assert len(res.hits) == 2 and res.truncated
    every = cat.find(FindQuery(pattern="index", sort="path")).hits
    assert [h.path for h in every] == sorted(h.path for h in every)
    assert [h.path for h in res.hits] == [h.path for h in every[:2]]
    by_size = cat.find(FindQuery(types=["file"], sort="-size")).hits
    assert [h.size for h in by_size] == sorted((h.size for h in by_size), reverse=True)
    assert by_size[0].size == 3 << 20
    for key in ("name", "mtime", "time", "-time"):
        assert len(cat.find(FindQuery(pattern="log", sort=key)).hits) == len(_find(cat, pattern="log"))
    with pytest.raises(UsageError):
        cat.find(FindQuery(sort="colour"))


def test_results_name_restorable_snapshots(cat, dataset):
    b, _ = dataset
    ids = {s.id for s in b.snaps}
    for h in cat.find(FindQuery(pattern="app.log")).hits:
        assert {h.snapshot, h.first_snapshot, h.last_snapshot} <= ids
        assert b.repo.find_snapshot(h.snapshot[:10]).id == h.snapshot


def test_history_lists_every_version_with_holders(cat, dataset):
    b, facts = dataset
    path = b.path("srv/logs/app.log")
    res = cat.history(path)
    want = [(f.size, [h.id for h in f.holders]) for f in facts if f.path == path]
    assert sorted((h.size, h.snapshots) for h in res.versions) == sorted(want)
    assert len(res.versions) == 2
    readme = cat.history(b.path("srv/README"))
    assert len(readme.versions) == 1 and len(readme.versions[0].snapshots) == 6
    assert cat.history(b.path("srv/nothing-here")).versions == []
    with pytest.raises(UsageError):
        cat.history("/")


def _listing_from_repo(b, snap, path, recursive=False):
    from ebas.backup.browse import list_path

    return sorted(p for p, _ in list_path(b.repo, snap, path, recursive))


def test_ls_snapshot_and_point_in_time(cat, dataset):
    b, _ = dataset
    www = b.path("srv/www")
    for snap in b.snaps:
        if snap.host != "alpha":
            continue
        res = cat.ls(www, snapshot=snap.id[:12])
        assert len(res.listings) == 1
        assert sorted(e.path for e in res.listings[0].entries) == _listing_from_repo(b, snap, www)
        rec = cat.ls(www, snapshot=snap.id, recursive=True)
        assert sorted(e.path for e in rec.listings[0].entries) == _listing_from_repo(b, snap, www, True)
    # at a time: each source's latest snapshot not after it
    at = T0 + int(2.2 * DAY)
    res = cat.ls(www, at=at)
    got = {(x.snapshot.snap_id, tuple(sorted(e.path for e in x.entries))) for x in res.listings}
    want = set()
    for key in {(s.host, tuple(s.paths)) for s in b.snaps}:
        cands = [s for s in b.snaps if (s.host, tuple(s.paths)) == key and s.time_ns <= at]
        if cands:
            s = max(cands, key=lambda s: s.time_ns)
            try:
                want.add((s.id, tuple(_listing_from_repo(b, s, www))))
            except UsageError:
                pass
    assert got == want and len(got) == 2
    only_www = cat.ls(www, at=at, sources=[www])
    assert len(only_www.listings) == 1
    file_entry = cat.ls(b.path("srv/README"), at=at, hosts=["alpha"])
    assert [e.path for x in file_entry.listings for e in x.entries] == [b.path("srv/README")]
    assert cat.ls(b.path("srv/www/blog"), at=at, sources=[b.path("srv")]).listings == []
    assert len(cat.ls(b.path("srv/www/blog"), at=at).listings) == 1  # the www-only source still had it
    assert cat.ls(www, at=T0 - DAY).listings == []


def test_ls_snapshot_reference_errors(cat, dataset):
    b, _ = dataset
    with pytest.raises(SnapshotNotFound):
        cat.ls("/", snapshot="ffffffffffff")
    with pytest.raises(AmbiguousSnapshot):
        cat.ls("/", snapshot="")
    latest = cat.ls(b.path("srv"), snapshot="latest")
    assert latest.listings[0].snapshot.snap_id == max(b.snaps, key=lambda s: s.time_ns).id
    with pytest.raises(UsageError):
        cat.ls("/")


@pytest.mark.parametrize("regex", [
    "(a+)+$", "(a*)*b", "(a|aa)*c", "(x+x+)+y", r"(\w+\s?)*$", "(.*a){20}", "a" * 300, "(a)\\1",
    ".*.*.*.*x", "(", "[z-a]",
])
def test_dangerous_or_broken_regexes_are_refused_quickly(cat, regex):
    t = time.monotonic()
    with pytest.raises(QueryRejected):
        cat.find(FindQuery(pattern=regex, match="regex"))
    assert time.monotonic() - t < 1.0


def test_huge_patterns_are_refused(cat):
    with pytest.raises(QueryRejected):
        cat.find(FindQuery(pattern="a" * 5000))
    with pytest.raises(QueryRejected):
        cat.find(FindQuery(pattern="", match="exact"))
    with pytest.raises(QueryRejected):
        cat.find(FindQuery(pattern="a\x00b"))


def test_accepted_regex_matches(cat, dataset):
    b, facts = dataset
    pat = r"^.*\.log.*$"
    assert _find(cat, pattern=pat, match="regex") == _rel(b, facts, lambda f: re.search(pat, f.name) is not None)


def test_query_deadline_aborts_and_the_catalog_recovers(cat):
    from ebas.catalog import QueryTimeout

    slow = ("WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 50000000) SELECT count(*) FROM c"
            if cat.engine == "sqlite" else "SELECT pg_sleep(5)")
    cat.db.set_deadline(0.2)
    t = time.monotonic()
    with pytest.raises(QueryTimeout):
        cat.db.q(slow)
    assert time.monotonic() - t < 3
    cat.db.set_deadline(None)
    if cat.engine == "sqlite":  # the regex function stops too once the deadline has passed
        cat.timeout = 1e-9
        try:
            with pytest.raises(QueryTimeout):
                cat.find(FindQuery(pattern=r".*x.*y", match="regex"))
        finally:
            cat.timeout = 30.0
    assert _find(cat, pattern="index") != set()


def test_snapshot_index_and_stats(cat, dataset):
    b, facts = dataset
    idx = SnapshotIndex(cat.db)
    assert {s.snap_id for s in idx.all} == {s.id for s in b.snaps}
    st = cat.stats()
    assert st["snapshots"] == 11 and st["versions"] == len(facts)
    assert st["size_bytes"] > 0 and st["bytes_per_version"] > 0
    assert st["sources"] == 3
