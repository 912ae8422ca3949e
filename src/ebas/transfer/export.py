"""Export one snapshot into a self-contained repository (for tape and cold cloud).

The new repository gets the source's chunker parameters, pack size, compression and,
by default, the source's **master key** (the same ``enc_key`` and ``id_key``, sealed under
the export's own key file and password): blob ids are identical, every blob is copied
as stored (no re-encryption), and the copy can later be deduplicated or replicated
against the source. The price: whoever opens the export can also decrypt the source
repository. With ``new_key`` the export gets a fresh ``enc_key`` (the ``id_key`` is
kept, so blob ids and dedup still match) and every blob is re-sealed under it.

Only the blobs the snapshot needs are copied, each once, verified first, in restore
order (see :mod:`ebas.lifecycle.synthetic`), then the index, then the snapshot: the same
write order as a backup, so an interrupted export is resumed by running it again
against the same destination (blobs already there are not copied again).
"""

from __future__ import annotations

import getpass
import os
import socket
from dataclasses import dataclass

from ebas.errors import RepositoryExists, UsageError
from ebas.progress import NULL_PROGRESS, Progress
from ebas.repo import keys as keyfiles
from ebas.repo.blobcopy import read_verified, restore_order
from ebas.repo.config import CONFIG_NAME, RepoConfig
from ebas.repo.repository import Repository
from ebas.repo.snapshots import Snapshot
from ebas.repo.subkeys import config_mac_key


@dataclass
class ExportResult:
    """Where the snapshot went and what was copied."""

    url: str
    repository_id: str
    snapshot: Snapshot
    source: Snapshot
    blobs_copied: int = 0
    bytes_copied: int = 0
    blobs_present: int = 0
    new_key: bool = False

    def to_json(self) -> dict:
        return {"url": self.url, "repository_id": self.repository_id, "snapshot_id": self.snapshot.id,
                "source": self.source.id, "blobs_copied": self.blobs_copied, "bytes_copied": self.bytes_copied,
                "blobs_already_present": self.blobs_present, "new_key": self.new_key}


def _who() -> tuple[str, str]:
    try:
        return socket.gethostname(), getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry in containers
        return socket.gethostname(), str(os.getuid())


def open_or_create(repo, dest_store, password, *, new_key: bool, kdf=None) -> Repository:
    """The destination repository: created with the source's parameters and master key
    (or a fresh enc_key), or an earlier export's repository reopened to resume it."""
    if dest_store.exists(CONFIG_NAME):
        dest = Repository.open(dest_store, password, clock=repo.clock, entropy=repo.entropy)
        if dest.master.id_key != repo.master.id_key:
            raise RepositoryExists(f"{dest_store.url} holds another repository (different id key)",
                                   hint="export to a new, empty location")
        return dest
    if any(True for _ in dest_store.list("")):
        raise RepositoryExists(f"{dest_store.url} is not empty", hint="export to a new, empty location")
    src = repo.config
    master = (keyfiles.MasterKey(repo.entropy.token_bytes(32), repo.master.id_key) if new_key else repo.master)
    config = RepoConfig(repo_id=repo.entropy.token_bytes(16).hex(), chunker=src.chunker, pack_size=src.pack_size,
                        compression=src.compression, compression_level=src.compression_level,
                        created_ns=repo.clock.now_ns())
    host, user = _who()
    key_id = keyfiles.add_key(dest_store, master, password, entropy=repo.entropy, clock=repo.clock, hostname=host,
                              username=user, kdf=kdf)
    sealed = config.seal(config_mac_key(master))  # authenticated with the destination's key
    dest_store.put(CONFIG_NAME, sealed)
    return Repository(dest_store, RepoConfig.decode(sealed), master, key_id, clock=repo.clock, entropy=repo.entropy)


def export_snapshot(repo, ref: str, dest_store, password, *, new_key: bool = False, kdf=None,
                    progress: Progress | None = None) -> ExportResult:
    """Copy snapshot ``ref`` of ``repo`` into the repository at ``dest_store``.

    ``progress`` receives the phase ``"export"``: items are the snapshot's blobs (each
    once, copied or already there), bytes the stored bytes copied; totals are not known
    ahead (the blobs are found as the trees are read)."""
    progress = progress or NULL_PROGRESS
    if dest_store.url == repo.store.url:
        raise UsageError("cannot export a repository into itself")
    src = repo.find_snapshot(ref)
    dest = open_or_create(repo, dest_store, password, new_key=new_key, kdf=kdf)
    reseal = None if dest.master.enc_key == repo.master.enc_key else (lambda plain, bid: dest.aead.seal(plain, bid))
    done = [s for s in dest.snapshots(refresh=True) if s.stats.get("exported_from") == src.id]
    if done:  # exported before: nothing to do
        return ExportResult(dest_store.url, dest.config.repo_id, done[0], src, new_key=reseal is not None)
    lock = repo.locks().acquire(f"export {src.id[:8]}")  # shared: a prune waits before deleting what we read
    try:
        repo.invalidate_index()
        res = ExportResult(dest_store.url, dest.config.repo_id, src, src, new_key=reseal is not None)
        with dest.session() as session:
            session.adopt_unindexed_packs()  # resume: packs of an interrupted export count
            progress.start("export")
            present = 0  # blobs already there, reported in batches
            for bid, kind in restore_order(repo, bytes.fromhex(src.tree)):
                if bid in session.table:
                    res.blobs_present += 1
                    present += 1
                    if present >= 1000:
                        progress.advance(items=present)
                        present = 0
                    continue
                b = read_verified(repo, bid, kind, reseal)
                copied = session.put_stored(b.blob_id, b.kind, b.codec, b.stored, b.raw_length)
                if copied:
                    res.blobs_copied += 1
                    res.bytes_copied += len(b.stored)
                progress.advance(items=1 + present, bytes=len(b.stored) if copied else 0)
                present = 0
            if present:
                progress.advance(items=present)
            stats = dict(src.stats)
            stats.update(exported_from=src.id, source_repository=repo.config.repo_id, bytes_read=0,
                         bytes_stored_added=res.bytes_copied, blobs_new=res.blobs_copied)
            snap = Snapshot(time_ns=src.time_ns, host=src.host, paths=list(src.paths), tree=src.tree, level="full",
                            tags=list(src.tags), username=src.username, partial=src.partial,
                            errors=list(src.errors), stats=stats)
            session.commit(snap)
            res.snapshot = snap
    finally:
        lock.release()
    return res
