"""Property tests: one corrupted byte anywhere (any pack, index segment or snapshot object)
never leads to a prune that deletes data a snapshot needs, nor to a backup that restores
wrongly.

* **prune**: after the damage, ``prune`` either refuses (an ebas error) or succeeds; then the
  damaged object is copied back, as from a replica. Every snapshot must restore byte for
  byte: whatever prune deleted was garbage, also for the snapshot it could not read. A
  damaged snapshot object must make prune refuse.
* **repair, then backup**: after the damage, ``repair index`` and a new backup of the source;
  the new snapshot must restore the source byte for byte (a damaged blob is never
  deduplicated against).
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ebas.backup.archiver import Archiver, BackupOptions
from ebas.backup.restorer import Restorer
from ebas.chunking.params import ChunkerParams
from ebas.crypto.kdf import KdfParams
from ebas.errors import EbasError
from ebas.lifecycle.prune import prune
from ebas.repo.index import IndexSegment, segment_name
from ebas.repo.pack import pack_name, parse_pack
from ebas.repo.repository import Repository
from ebas.runtime import SYSTEM_ENTROPY
from ebas.storage.backends.memory import MemoryStore
from ebas.verify.check import check_repository
from ebas.verify.repair import rebuild_index

PREFIXES = ("data/", "index/", "snapshots/")
SETTINGS = settings(max_examples=int(os.environ.get("EBAS_PROPERTY_EXAMPLES", "30")), deadline=None,
                    derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                             HealthCheck.too_slow])


def read_tree(root: str) -> dict[str, bytes]:
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            with open(os.path.join(dirpath, f), "rb") as fh:
                out[os.path.relpath(os.path.join(dirpath, f), root)] = fh.read()
    return out


def write_state(src: str, version: int) -> None:
    """Version ``version`` of a small changing source tree."""
    rng = random.Random(version)
    os.makedirs(os.path.join(src, "d", "e"), exist_ok=True)
    for i in range(4):
        keep = i >= version  # files below ``version`` change in each version
        data = random.Random(i if keep else 100 * version + i).randbytes(9_000 + 3_000 * i)
        with open(os.path.join(src, "d" if i % 2 else "d/e", f"f{i}.bin"), "wb") as f:
            f.write(data)
    with open(os.path.join(src, "text.txt"), "wb") as f:
        f.write(b"line of text %d\n" * 500 % tuple(range(500)) if version == 0 else rng.randbytes(2_000))


class Template:
    """A repository with three snapshots of a changing source, the first forgotten (so prune
    has garbage to delete); kept as bytes and copied into a fresh store per example."""

    def __init__(self, base: str):
        self.base = base
        self.src = os.path.join(base, "src")
        store = MemoryStore()
        repo = Repository.init(store, "pw", kdf=KdfParams.fast_for_tests(SYSTEM_ENTROPY), pack_size=20 * 1024,
                               chunker=ChunkerParams(min_size=1024, avg_size=4096, max_size=16384))
        self.states, self.snaps = [], []
        for version in range(3):
            write_state(self.src, version)
            self.snaps.append(Archiver(repo, BackupOptions(paths=[self.src], workers=1)).run().snapshot)
            self.states.append(read_tree(self.src))
        repo.delete_snapshot(self.snaps[0].id)
        self.snaps, self.states = self.snaps[1:], self.states[1:]
        self.objects = {i.name: store.get(i.name) for i in store.list("")}

    def copy(self) -> Repository:
        store = MemoryStore()
        for name, data in self.objects.items():
            store.put(name, data)
        return Repository.open(store, "pw")

    def victims(self) -> list[str]:
        return sorted(n for n in self.objects if n.startswith(PREFIXES))

    def restore(self, repo: Repository, snap) -> dict[str, bytes]:
        target = tempfile.mkdtemp(dir=self.base, prefix="restore-")
        try:
            Restorer(repo, snap, target).run()
            return read_tree(target + self.src)
        finally:
            shutil.rmtree(target, ignore_errors=True)


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return Template(str(tmp_path_factory.mktemp("corruption")))


damage = st.tuples(st.integers(0, 10**6), st.integers(0, 10**9), st.integers(0, 7), st.booleans())


def corrupt(template: Template, repo: Repository, choice) -> tuple[str, bytes]:
    """Flip one bit of one byte (or truncate at that byte) of a chosen object; returns the
    name and its original bytes."""
    which, where, bit, truncate = choice
    victims = template.victims()
    name = victims[which % len(victims)]
    good = template.objects[name]
    at = where % len(good)
    bad = good[:at] if truncate else good[:at] + bytes([good[at] ^ (1 << bit)]) + good[at + 1 :]
    repo.store.put(name, bad)
    return name, good


@SETTINGS
@given(choice=damage)
def test_prune_after_any_corruption_never_deletes_what_a_snapshot_needs(template, choice):
    repo = template.copy()
    name, good = corrupt(template, repo, choice)
    try:
        prune(repo, grace=0, max_wait=0, max_unused=0.0)
        refused = False
    except EbasError:
        refused = True
    if name.startswith("snapshots/"):
        assert refused, f"prune ran although {name} was unreadable"
    assert not list(repo.store.list("locks/"))
    repo.store.put(name, good)  # the damaged object comes back from a replica
    healed = Repository.open(repo.store, "pw")
    if any(True for _ in healed.store.list("prune/")):
        prune(healed, grace=0, max_wait=0, max_unused=0.0)  # finish what a refusal left pending
        healed = Repository.open(repo.store, "pw")
    for snap, state in zip(template.snaps, template.states):
        assert template.restore(healed, snap) == state, f"{snap.id[:12]} lost data after damage to {name}"


@SETTINGS
@given(choice=damage)
def test_repair_then_backup_after_any_corruption_restores_the_source(template, choice):
    repo = template.copy()
    name, _good = corrupt(template, repo, choice)
    rebuild_index(repo)
    fresh = Repository.open(repo.store, "pw")
    snap = Archiver(fresh, BackupOptions(paths=[template.src], workers=1)).run().snapshot
    after = Repository.open(repo.store, "pw")
    assert template.restore(after, snap) == template.states[-1], f"wrong restore after damage to {name}"


@SETTINGS
@given(which=st.integers(0, 10**6), fake=st.binary(min_size=32, max_size=32), indexed=st.booleans(),
       flip=st.one_of(st.none(), st.integers(0, 10**9)))
def test_a_pack_copied_under_another_name_never_costs_the_genuine_pack(template, which, fake, indexed, flip):
    """A copy of a pack (maybe with a flipped byte) under another valid pack name, maybe even
    listed by an index segment: prune before 'repair index' may refuse but never deletes
    what only the genuine pack holds; after the repair and another prune every snapshot
    restores byte for byte and the repository checks clean."""
    repo = template.copy()
    packs = sorted(n for n in template.objects if n.startswith("data/"))
    genuine = packs[which % len(packs)]
    name = pack_name(fake)
    data = bytearray(template.objects[genuine])
    if flip is not None:
        data[flip % len(data)] ^= 0x01
    repo.store.put(name, bytes(data))
    if indexed:  # as an older ebas (or a planted segment) would have it
        try:
            entries = parse_pack(repo.aead, bytes(data))
        except EbasError:
            entries = []
        stored = IndexSegment.from_packs({fake: entries}).encode(repo.aead)
        repo.store.put(segment_name(stored), stored)
    try:  # before any repair: it may refuse, but must not delete what only the genuine pack holds
        prune(Repository.open(repo.store, "pw"), grace=0, max_wait=0, max_unused=0.0)
    except EbasError:
        pass
    rebuild_index(Repository.open(repo.store, "pw"))
    prune(Repository.open(repo.store, "pw"), grace=0, max_wait=0, max_unused=0.0)
    fresh = Repository.open(repo.store, "pw")
    for snap, state in zip(template.snaps, template.states):
        assert template.restore(fresh, snap) == state, f"lost data after a copy of {genuine} was planted"
    assert not repo.store.exists(name)  # quarantined by the repair (or deleted by prune as garbage)
    assert check_repository(Repository.open(repo.store, "pw"), read_data=True).ok

