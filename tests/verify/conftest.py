"""Fixtures for verification tests: a small real repository with two backups on a file store,
and helpers to damage its objects in place and to restore and compare."""

from __future__ import annotations

import os
import random
import shutil
from dataclasses import dataclass, field

import pytest

from ebas.backup.archiver import Archiver, BackupOptions
from ebas.backup.restorer import Restorer
from ebas.chunking.params import ChunkerParams
from ebas.crypto.ids import pack_id
from ebas.crypto.kdf import KdfParams
from ebas.repo.index import IndexSegment
from ebas.repo.pack import KIND_DATA, PackEntry, encode_header, pack_name
from ebas.repo.repository import Repository
from ebas.repo.tree import Node
from ebas.runtime import SYSTEM_ENTROPY
from ebas.storage import open_store

SMALL_CHUNKS = ChunkerParams(min_size=1024, avg_size=4096, max_size=16384)
PACK_SIZE = 24 * 1024


def write(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def read_tree(root: str) -> dict[str, bytes]:
    """``{relative path: bytes}`` of every regular file under ``root``."""
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            full = os.path.join(dirpath, name)
            if os.path.isfile(full) and not os.path.islink(full):
                with open(full, "rb") as f:
                    out[os.path.relpath(full, root)] = f.read()
    return out


@dataclass
class RepoEnv:
    """A repository with two snapshots of ``src`` (``v1`` is a copy of the first state)."""

    repo: Repository
    root: str
    src: str
    v1: str
    tmp: str
    snaps: list = field(default_factory=list)

    # --------------------------------------------------------------- damage
    def file(self, name: str) -> str:
        return os.path.join(self.root, name)

    def names(self, prefix: str) -> list[str]:
        return sorted(i.name for i in self.repo.store.list(prefix))

    def flip(self, name: str, offset: int, mask: int = 0x40) -> None:
        """Flip bits of one byte of a stored object, in place (bit rot)."""
        with open(self.file(name), "r+b") as f:
            f.seek(offset)
            byte = f.read(1)
            f.seek(offset)
            f.write(bytes([byte[0] ^ mask]))

    def truncate(self, name: str, size: int) -> None:
        os.truncate(self.file(name), size)

    def fresh(self) -> Repository:
        """The same repository opened again (nothing cached)."""
        return Repository.open(open_store(self.root, fsync=False), "pw")

    # ---------------------------------------------------------------- trees
    def node(self, rel: str, snap=None) -> Node:
        """The tree node of ``src/rel`` in ``snap`` (default: the latest snapshot)."""
        snap = snap or self.snaps[-1]
        parts = [p for p in self.src.split("/") if p] + [p for p in rel.split("/") if p]
        tree = bytes.fromhex(snap.tree)
        node = None
        for comp in parts:
            node = next(n for n in self.repo.load_tree(tree) if n.display_name == comp)
            tree = node.subtree
        return node

    def locate(self, blob_id: bytes) -> tuple[str, int, int]:
        """``(pack name, offset, length)`` of a blob according to the current index."""
        self.repo.invalidate_index()
        pid, off, length = self.repo.index.table.lookup(blob_id)
        return pack_name(pid), off, length

    def segment_of(self, blob_id: bytes) -> str:
        """The name of the (first) index segment listing ``blob_id``."""
        for name in self.names("index/"):
            seg = IndexSegment.decode(self.repo.aead, self.repo.store.get(name), name)
            if blob_id in set(seg.entries["id"].tobytes()[i : i + 32] for i in range(0, 32 * len(seg.entries), 32)):
                return name
        raise AssertionError("blob in no index segment")

    # -------------------------------------------------------------- restore
    def restore(self, snap=None, repo=None) -> dict[str, bytes]:
        """Restore ``snap`` (default latest) into a new directory; the files of ``src`` there."""
        repo = repo or self.repo
        snap = snap or self.snaps[-1]
        target = os.path.join(self.tmp, f"restore-{random.getrandbits(40):x}")
        Restorer(repo, snap, target).run()
        return read_tree(target + self.src)

    def assert_restores(self, repo=None) -> None:
        """Both snapshots restore bit for bit."""
        assert self.restore(self.snaps[0], repo) == read_tree(self.v1)
        assert self.restore(self.snaps[-1], repo) == read_tree(self.src)

    def orphan_pack(self, payloads: list[bytes]) -> str:
        """Store a well-formed pack that no index segment lists (as a crashed backup leaves)."""
        buf, entries = bytearray(), []
        for data in payloads:
            bid = self.repo.ids.blob_id(data)
            stored, codec = self.repo.codec.encode(bid, data)
            entries.append(PackEntry(bid, KIND_DATA, codec, len(buf), len(stored), len(data)))
            buf += stored
        buf += encode_header(self.repo.aead, entries)
        name = pack_name(pack_id(bytes(buf)))
        self.repo.store.put(name, bytes(buf))
        return name


def make_source(src: str, rng: random.Random) -> None:
    text = b"".join(b"line %d of a compressible document\n" % i for i in range(1500))
    write(f"{src}/docs/a.txt", text)
    write(f"{src}/docs/b.txt", text[::-1])
    write(f"{src}/photos/img1.bin", rng.randbytes(60_000))
    write(f"{src}/photos/img2.bin", rng.randbytes(30_000))
    write(f"{src}/deep/x/y/z/leaf.bin", rng.randbytes(5_000))
    write(f"{src}/empty.txt", b"")
    os.symlink("docs/a.txt", f"{src}/link")


def build_env(tmp: str, seed: int = 1) -> RepoEnv:
    rng = random.Random(seed)
    src, v1, root = os.path.join(tmp, "src"), os.path.join(tmp, "v1"), os.path.join(tmp, "repo")
    make_source(src, rng)
    repo = Repository.init(open_store(root, fsync=False), "pw", kdf=KdfParams.fast_for_tests(SYSTEM_ENTROPY),
                           chunker=SMALL_CHUNKS, pack_size=PACK_SIZE)
    env = RepoEnv(repo, root, src, v1, tmp)
    shutil.copytree(src, v1, symlinks=True)  # before the backup: copying changes atimes
    opts = BackupOptions(paths=[src], workers=1)  # one reader: a deterministic pack layout
    env.snaps.append(Archiver(repo, opts).run().snapshot)
    with open(f"{src}/docs/a.txt", "ab") as f:
        f.write(b"appended in the second backup\n" * 100)
    write(f"{src}/new/new.bin", rng.randbytes(40_000))
    env.snaps.append(Archiver(repo, opts).run().snapshot)
    return env


@pytest.fixture
def env(tmp_path) -> RepoEnv:
    """A fresh two-snapshot repository (file store) for one test."""
    return build_env(str(tmp_path))
