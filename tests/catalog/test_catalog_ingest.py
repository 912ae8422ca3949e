"""Ingest: intervals, cost that follows change, atomicity, late arrivals and forgetting."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest
from catalog_helpers import SyntheticTrees, canonical, open_for, row_count, synth_info

from ebas.catalog import FindQuery, open_catalog
from ebas.catalog.ingest import Ingestor


def _rows_for(cat, name: str) -> int:
    return int(cat.db.one("SELECT count(*) FROM versions v JOIN names n ON n.id = v.name_id WHERE n.name = ?", [name]))


def test_unchanged_file_over_300_snapshots_is_one_row(new_location):
    cat = open_catalog(new_location())
    trees = SyntheticTrees()
    for i in range(300):
        root = trees.build({"etc/stable.conf": (10, 1), "var/counter": (i, 100 + i), "var/keep/a": (1, 1)})
        st = cat.ingest(synth_info(i, root), trees)
        assert st.added
    assert _rows_for(cat, "stable.conf") == 1
    assert _rows_for(cat, "counter") == 300
    hit = cat.find(FindQuery("stable.conf", match="exact")).hits
    assert len(hit) == 1 and hit[0].snapshot_count == 300
    assert row_count(cat) == 300 + 1 + 1 + 3  # counter versions, stable, a, and the dirs etc, var, keep
    cat.close()


def test_real_backups_unchanged_file_is_one_row(builder, new_location, wait):
    builder.write("src/stable.txt", "same forever")
    for k in range(8):
        builder.write("src/changing.txt", f"version {k}")
        wait()
        builder.backup(["src"], k)
    cat = open_for(builder, new_location())
    cat.sync(builder.repo)
    assert _rows_for(cat, "stable.txt") == 1
    assert _rows_for(cat, "changing.txt") == 8
    h = cat.history(builder.path("src/stable.txt")).versions
    assert len(h) == 1 and h[0].snapshots == [s.id for s in builder.snaps]
    cat.close()


def test_ingest_cost_follows_change(new_location):
    cat = open_catalog(new_location())
    trees = SyntheticTrees()
    files = {f"d{a}/e{b}/f{c}/file{i}.txt": (i, 1) for a in range(5) for b in range(5) for c in range(4)
             for i in range(10)}
    st0 = cat.ingest(synth_info(0, trees.build(files)), trees)
    total_dirs = 1 + 5 + 25 + 100
    assert st0.trees_read == total_dirs and st0.rows_inserted == len(files) + total_dirs - 1
    files["d3/e2/f1/file7.txt"] = (999, 2)  # one changed file, three levels down
    st1 = cat.ingest(synth_info(1, trees.build(files)), trees)
    assert st1.trees_read == 4  # root, d3, d3/e2, d3/e2/f1 — nothing else is read
    assert (st1.rows_inserted, st1.rows_closed) == (1, 1)
    st2 = cat.ingest(synth_info(2, trees.build(files)), trees)  # nothing changed
    assert st2.trees_read == 0 and st2.rows_inserted == 0
    del files["d0/e0/f0/file0.txt"]
    files["d4/new.txt"] = (5, 5)
    st3 = cat.ingest(synth_info(3, trees.build(files)), trees)
    assert st3.trees_read == 1 + 3 + 1  # root, d0, d0/e0, d0/e0/f0, d4
    cat.close()


def test_ingest_cost_follows_change_on_a_real_repository(builder, new_location, wait):
    for a in range(4):
        for b in range(4):
            builder.write(f"src/a{a}/b{b}/x.txt", "x")
    builder.backup(["src"], 0)
    builder.write("src/a2/b3/x.txt", "changed")
    wait()
    builder.backup(["src"], 1)
    cat = open_for(builder, new_location())
    first = cat.ingest_snapshot(builder.repo, builder.snaps[0])
    second = cat.ingest_snapshot(builder.repo, builder.snaps[1])
    depth = len(builder.path("src/a2/b3").strip("/").split("/")) + 1  # every directory from / down
    assert second.trees_read == depth
    assert first.trees_read == (depth - 3) + 1 + 4 + 16  # layout dirs above src, src, a*, a*/b*
    cat.close()


class FailingTrees:
    """Delegates to a tree source and fails on the Nth read (an ingest cut half way)."""

    def __init__(self, inner, fail_at: int):
        self.inner, self.fail_at, self.reads = inner, fail_at, 0

    def entries(self, tree_id):
        self.reads += 1
        if self.reads >= self.fail_at:
            raise OSError("connection to the repository lost")
        return self.inner.entries(tree_id)


@pytest.mark.parametrize("which", [0, 2, 1])
def test_interrupted_ingest_is_invisible_then_completes(new_location, which):
    rng = random.Random(5)
    trees = SyntheticTrees()
    roots = []
    files = {f"d{i % 7}/s{i % 3}/f{i}": (i, 1) for i in range(400)}
    for k in range(3):
        for key in rng.sample(sorted(files), 30):
            files[key] = (rng.randrange(10**6), k + 2)
        roots.append(trees.build(files))
    order = [i for i in range(3) if i != which] + [which]  # which=1 lands in the middle
    cat = open_catalog(new_location())
    for i in order[:-1]:
        cat.ingest(synth_info(i, roots[i]), trees)
    before = canonical(cat)
    marks = cat.mark
    with pytest.raises(OSError):
        cat.ingest(synth_info(which, roots[which]), FailingTrees(trees, 3))
    assert canonical(cat) == before and cat.mark == marks
    assert synth_info(which, roots[which]).snap_id not in {s.snap_id for s in cat.snapshots()}
    cat.ingest(synth_info(which, roots[which]), trees)
    ref = open_catalog(new_location())
    for i in range(3):
        ref.ingest(synth_info(i, roots[i]), trees)
    assert canonical(cat) == canonical(ref)
    cat.close()
    ref.close()


KILL_SCRIPT = r"""
import sys, time
sys.path.insert(0, sys.argv[3])
from catalog_helpers import SyntheticTrees, synth_info
from ebas.catalog import open_catalog
trees = SyntheticTrees()
files = {f"d{i % 50}/f{i}": (i, 1) for i in range(5000)}
root = trees.build(files)
class Slow:
    reads = 0
    def entries(self, t):
        self.reads += 1
        if self.reads == 20:
            print("half way", flush=True)
        if self.reads >= 20:
            time.sleep(0.2)
        return trees.entries(t)
cat = open_catalog(sys.argv[1], repo_id=sys.argv[2])
cat.ingest(synth_info(int(sys.argv[4]), root), Slow())
print("done", flush=True)
"""


def test_killed_ingest_leaves_nothing_and_a_rerun_completes(new_location, tmp_path):
    loc = new_location()
    here = os.path.dirname(__file__)
    script = tmp_path / "ingest.py"
    script.write_text(KILL_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), loc, "r1", here, "0"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "half way"
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    cat = open_catalog(loc, repo_id="r1")
    assert cat.snapshots() == [] and row_count(cat) == 0 and row_count(cat, "trees") == 0
    assert cat.check(integrity=True, snapshot_ids=[]).problems == []
    trees = SyntheticTrees()
    root = trees.build({f"d{i % 50}/f{i}": (i, 1) for i in range(5000)})
    st = cat.ingest(synth_info(0, root), trees)
    assert st.added and row_count(cat) == 5000 + 50
    cat.close()


def _random_history(seed: int, n: int, files: int = 60):
    rng = random.Random(seed)
    trees = SyntheticTrees()
    state = {f"a{i % 3}/b{i % 5}/f{i}": (i, 1) for i in range(files)}
    roots = []
    for k in range(n):
        for key in rng.sample(sorted(state), 4):
            state[key] = (rng.choice([1, 2, 3]), rng.choice([1, 2]))  # values recur: V, W, V patterns
        if rng.random() < 0.3:
            state.pop(rng.choice(sorted(state)), None)
        if rng.random() < 0.3:
            state[f"a{rng.randrange(4)}/new{k}"] = (k, k)
        if rng.random() < 0.15:
            for key in [k2 for k2 in state if k2.startswith("a1/")]:
                del state[key]
        roots.append(trees.build(dict(state)))
    return trees, roots


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_late_arrivals_give_the_same_catalog_as_in_order(new_location, seed):
    trees, roots = _random_history(seed, 12)
    ref = open_catalog(new_location())
    for i, r in enumerate(roots):
        ref.ingest(synth_info(i, r), trees)
    order = list(range(len(roots)))
    random.Random(seed).shuffle(order)
    cat = open_catalog(new_location())
    cat.ingestor = Ingestor(cat.db, gap=4)  # tiny gaps: forces renumbering
    for i in order:
        st = cat.ingest(synth_info(i, roots[i]), trees)
        assert st.added
    assert canonical(cat) == canonical(ref)
    assert row_count(cat) == row_count(ref)  # as compact as in-order ingest
    ref.close()
    cat.close()


@pytest.mark.parametrize("seed", [4, 5, 6])
def test_forgetting_gives_the_same_catalog_as_never_ingesting(new_location, seed):
    trees, roots = _random_history(seed, 12)
    cat = open_catalog(new_location())
    for i, r in enumerate(roots):
        cat.ingest(synth_info(i, r), trees)
    rng = random.Random(seed)
    gone = rng.sample(range(len(roots)), 6)
    for i in gone:
        assert cat.forget(synth_info(i, roots[i]).snap_id)
    assert not cat.forget("0" * 64)
    ref = open_catalog(new_location())
    for i, r in enumerate(roots):
        if i not in gone:
            ref.ingest(synth_info(i, r), trees)
    assert canonical(cat) == canonical(ref)
    assert row_count(cat) == row_count(ref) and row_count(cat, "trees") == row_count(ref, "trees")
    for i in gone:  # and they can come back
        cat.ingest(synth_info(i, roots[i]), trees)
    full = open_catalog(new_location())
    for i, r in enumerate(roots):
        full.ingest(synth_info(i, r), trees)
    assert canonical(cat) == canonical(full)
    for c in (cat, ref, full):
        c.close()


def test_ingesting_twice_is_a_no_op(new_location):
    trees, roots = _random_history(9, 3)
    cat = open_catalog(new_location())
    for i, r in enumerate(roots):
        cat.ingest(synth_info(i, r), trees)
    before, mark = canonical(cat), cat.mark
    st = cat.ingest(synth_info(1, roots[1]), trees)
    assert not st.added and canonical(cat) == before and cat.mark == mark
    cat.close()


def test_sources_are_separate_sequences(new_location):
    trees = SyntheticTrees()
    cat = open_catalog(new_location())
    for i in range(4):
        cat.ingest(synth_info(i, trees.build({"x/f": (i % 2, 1)}), host="one"), trees)
        cat.ingest(synth_info(i, trees.build({"x/f": (7, 1)}), host="two"), trees)
    hits = cat.find(FindQuery("f", match="exact")).hits
    assert sorted((h.host, h.snapshot_count) for h in hits) == [("one", 1), ("one", 1), ("one", 1), ("one", 1),
                                                               ("two", 4)]
    cat.close()
