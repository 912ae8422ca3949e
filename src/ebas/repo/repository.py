"""``Repository``: an opened repository (config, master key, index, snapshots).

Reading goes through :meth:`Repository.get_blob`, which verifies every blob it returns
(authentication tag, decompression, and the keyed id over the plaintext). Writing goes
through a :class:`ebas.repo.session.WriteSession` (packs, then index, then snapshot).
"""

from __future__ import annotations

import getpass
import os
import socket
from dataclasses import dataclass, field, replace

from ebas.chunking.params import FASTCDC_KEYED, ChunkerParams
from ebas.crypto.kdf import KdfParams
from ebas.errors import (
    AmbiguousSnapshot,
    IndexDamaged,
    IntegrityError,
    ObjectNotFound,
    RepositoryExists,
    RepositoryNotFound,
    SnapshotNotFound,
)
from ebas.repo import keys as keyfiles
from ebas.repo import snapshots as snaps
from ebas.repo import subkeys
from ebas.repo.blobcodec import BlobCodec
from ebas.repo.config import CONFIG_NAME, DEFAULT_PACK_SIZE, TAMPERED_HINT, RepoConfig
from ebas.repo.config import authenticate as authenticate_config
from ebas.repo.locks import LockManager
from ebas.repo.pack import pack_id_from_name, pack_name
from ebas.repo.tree import Node, decode_tree
from ebas.runtime import SYSTEM_CLOCK, SYSTEM_ENTROPY, Clock, Entropy
from ebas.storage.base import Store


@dataclass
class IndexState:
    """The loaded dedup table and what was wrong with the index while loading it."""

    table: "DedupTable"  # noqa: F821 - imported lazily (numpy) to keep CLI start-up fast
    segments: list[str] = field(default_factory=list)
    damaged: list[tuple[str, str]] = field(default_factory=list)
    cached: bool = False  # mapped from the local dedup-table cache (ebas.repo.dedupcache)


LEGACY_CONFIG_WARNING = ("the repository config is not authenticated (format version 1): someone who can "
                         "write to the storage could change its settings unnoticed; run 'ebas migrate' "
                         "to authenticate it")


CONFIG_AUTHENTICATED_STAT = "config_authenticated"


def _refuse_downgrade(snapshots: list[snaps.Snapshot]) -> None:
    """A legacy config, yet a snapshot (sealed with the key) was written under an
    authenticated one: the config was stripped of its MAC on the storage."""
    for snap in snapshots:
        if isinstance(snap.stats, dict) and snap.stats.get(CONFIG_AUTHENTICATED_STAT) is True:
            raise IntegrityError(
                f"the repository config has no MAC, but snapshot {snap.id[:8]} was written when it had one: "
                "the config was downgraded on the storage", hint=TAMPERED_HINT)


def _whoami() -> tuple[str, str]:
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry in containers
        user = str(os.getuid())
    return socket.gethostname(), user



def read_runs(locs: list[tuple[bytes, int, int]], max_gap: int, max_read: int):
    """Group ``(pack, offset, length)`` locations sorted by pack and offset into ranged reads:
    yields ``(i, j, pack, start, end)`` for ``locs[i:j]``, one read of ``[start, end)`` each,
    bridging gaps up to ``max_gap`` and never longer than ``max_read``."""
    i, n = 0, len(locs)
    while i < n:
        pack, start, length = locs[i]
        end, j = start + length, i + 1
        while j < n:
            p2, o2, l2 = locs[j]
            if p2 != pack or o2 - end > max_gap or o2 + l2 - start > max_read:
                break
            end = max(end, o2 + l2)
            j += 1
        yield i, j, pack, start, end
        i = j

class Repository:
    """An open repository. Create with :meth:`init` or :meth:`open`."""

    def __init__(self, store: Store, config: RepoConfig, master: keyfiles.MasterKey, key_id: str, *,
                 clock: Clock = SYSTEM_CLOCK, entropy: Entropy = SYSTEM_ENTROPY):
        self.store = store
        self.config = config
        self.master = master
        self.key_id = key_id
        self.clock = clock
        self.entropy = entropy
        self.aead = master.aead(entropy)
        self.ids = master.ids()
        self.codec = BlobCodec(self.aead, self.ids, level=config.compression_level,
                               compression=config.compression != "none")
        self.key_warnings: list[str] = []  # found while opening (damaged key files, weak KDF, legacy config)
        self.warnings: list[str] = []  # found later, through warn()
        self.on_warning = None  # callable(message) the front end sets to show warnings as they happen
        self._index: IndexState | None = None
        self._snapshots: list[snaps.Snapshot] | None = None
        self.snapshot_problems: list[str] = []

    # ---------------------------------------------------------- init / open
    @classmethod
    def init(cls, store: Store, password: bytes | str, *, chunker: ChunkerParams | None = None,
             pack_size: int = DEFAULT_PACK_SIZE, compression: str = "zstd", kdf: KdfParams | None = None,
             clock: Clock = SYSTEM_CLOCK, entropy: Entropy = SYSTEM_ENTROPY) -> "Repository":
        """Create a new repository in an empty store and return it opened."""
        if store.exists(CONFIG_NAME) or any(True for _ in store.list("keys/")):
            raise RepositoryExists(f"a repository already exists at {store.url}",
                                   hint="use another location, or open this one")
        lock = store.object_lock()
        params = chunker or ChunkerParams()
        if not params.keyed:  # new repositories cut at keyed boundaries (docs/format.md, "Chunking")
            params = replace(params, algorithm=FASTCDC_KEYED)
        config = RepoConfig(repo_id=entropy.token_bytes(16).hex(), chunker=params,
                            pack_size=pack_size, compression=compression, created_ns=clock.now_ns(),
                            object_lock={"mode": lock[0], "days": lock[1]} if lock else None)
        master = keyfiles.MasterKey.generate(entropy)
        host, user = _whoami()
        key_id = keyfiles.add_key(store, master, password, entropy=entropy, clock=clock, hostname=host,
                                  username=user, kdf=kdf)
        sealed = config.seal(subkeys.config_mac_key(master))
        store.put(CONFIG_NAME, sealed)  # written last: its presence means "initialised"
        return cls(store, RepoConfig.decode(sealed), master, key_id, clock=clock, entropy=entropy)

    @classmethod
    def open(cls, store: Store, password: bytes | str, *, clock: Clock = SYSTEM_CLOCK,
             entropy: Entropy = SYSTEM_ENTROPY) -> "Repository":
        """Open an existing repository; raises ``RepositoryNotFound`` / ``WrongPassword`` /
        ``KeyFileError`` / ``UnsupportedFormat`` with a hint, and ``IntegrityError`` if the
        config fails authentication with the master key (docs/format.md, "config").

        Order: the config is read and parsed without a key, the key is opened, then the
        config is authenticated; nothing from the config is acted on before that.
        A legacy (version 1) config without a MAC opens with a warning in ``warnings``.
        """
        data = cls._read_config_bytes(store)
        config = RepoConfig.decode(data, check_schemes=False)
        warnings: list[str] = []
        master, key_id = keyfiles.open_master_key(store, password, warnings=warnings)
        weak = keyfiles.key_kdf(store, key_id).weakness()
        if weak:
            warnings.append(f"key {key_id[:12]} was made with test-strength KDF parameters ({weak}): its password "
                            "is cheap to guess; replace the key with 'ebas key passwd'")
        if not authenticate_config(data, config, subkeys.config_mac_key(master)):
            warnings.append(LEGACY_CONFIG_WARNING)
        config.check_supported()
        if config.object_lock and store.object_lock() is None:
            # the repository was created with write-once retention: every later write keeps it
            store.set_object_lock(config.object_lock["mode"], config.object_lock["days"])
        repo = cls(store, config, master, key_id, clock=clock, entropy=entropy)
        repo.key_warnings = warnings
        return repo

    @staticmethod
    def _read_config_bytes(store: Store) -> bytes:
        try:
            return store.get(CONFIG_NAME)
        except ObjectNotFound:
            raise RepositoryNotFound(f"no ebas repository at {store.url} (no 'config' object)") from None

    @classmethod
    def read_config(cls, store: Store) -> RepoConfig:
        """The repository config, parsed but not authenticated (no key needed), or
        ``RepositoryNotFound``. Use it only for what a keyless reader may know."""
        return RepoConfig.decode(cls._read_config_bytes(store))

    def verify_config(self) -> RepoConfig:
        """Re-read the stored config and authenticate it with this repository's key
        (``IntegrityError`` if it was changed on the storage since, or is damaged)."""
        data = self._read_config_bytes(self.store)
        config = RepoConfig.decode(data, check_schemes=False)
        authenticate_config(data, config, subkeys.config_mac_key(self.master))
        if config != self.config:
            raise IntegrityError("the repository config changed on the storage while this repository was open")
        return config

    @property
    def config_authenticated(self) -> bool:
        """True if the config carries a MAC that this repository's key verified."""
        return self.config.authenticated

    def chunker(self, buffer_size: int | None = None):
        """A :class:`~ebas.chunking.chunker.Chunker` for this repository's parameters
        (seeded with the repository's secret when its boundaries are keyed)."""
        from ebas.chunking.chunker import DEFAULT_BUFFER, Chunker

        return Chunker(self.config.chunker, buffer_size or DEFAULT_BUFFER, seed=subkeys.chunker_seed(self.master))

    def warn(self, message: str) -> None:
        """Report a warning found while working (e.g. a rejected local cache) to ``on_warning``."""
        self.warnings.append(message)
        if self.on_warning is not None:
            self.on_warning(message)

    def locks(self, *, heartbeat: float | None = 300) -> LockManager:
        """A lock manager for this repository."""
        host, user = _whoami()
        return LockManager(self.store, self.clock, self.entropy, host=host, user=user, heartbeat=heartbeat)

    # ----------------------------------------------------------------- index
    @property
    def index(self) -> IndexState:
        """The dedup table, loaded from every index segment on first use."""
        if self._index is None:
            self._index = self.load_index()
        return self._index

    def load_index(self) -> IndexState:
        """Read every index segment. Damaged segments are recorded, not fatal here;
        writers call :meth:`require_healthy_index` before trusting the table."""
        from ebas.repo import dedupcache
        from ebas.repo.dedup import DedupTable
        from ebas.repo.index import IndexSegment, check_segment_name

        names = sorted(info.name for info in self.store.list("index/"))
        cache_key = subkeys.dedup_cache_key(self.master)
        cached = dedupcache.load(self.config.repo_id, names, cache_key, self.warn)  # docs/format.md, "Dedup table"
        skip: set[str] = set()
        while True:  # one pass, unless a segment turns out to be superseded by a later one (rare)
            if cached is not None:
                state = IndexState(cached.table, list(cached.segments), cached=True)
                todo = [n for n in names if n not in cached.names]
            else:
                state, todo = IndexState(DedupTable()), names
            superseded: set[str] = set()
            for name in todo:
                if name in skip:
                    continue
                try:
                    stored = self.store.get(name)
                    check_segment_name(name, stored)
                    seg = IndexSegment.decode(self.aead, stored, name)
                except ObjectNotFound:
                    continue
                except IntegrityError as exc:
                    state.damaged.append((name, exc.message))
                    continue
                superseded.update("index/" + s.hex() for s in seg.supersedes)
                state.table.add_segment(seg.packs, seg.entries)  # memory: the table plus one segment
                state.segments.append(name)
            if cached is not None and superseded & set(cached.segments):
                cached = None  # a compaction replaced cached segments: rebuild from all of them
                continue
            if not superseded & set(state.segments):
                break
            skip |= superseded
        state.damaged = [(n, why) for n, why in state.damaged if n not in superseded | skip]
        state.table.compact()
        if not state.damaged and (cached is None or todo):
            dedupcache.save(self.config.repo_id, names, state.segments, state.table, cache_key)
        self._steer_from_damage(state)
        return state

    def _steer_from_damage(self, state: IndexState) -> None:
        """Read blobs that a damage record (``damaged/``, written by ``check --read-data``)
        lists from another, intact indexed copy where one exists (docs/format.md, "Damage
        records"). Segments are read again only if a blob resolves to a damaged copy."""
        from ebas.repo import damage
        from ebas.repo.index import IndexSegment

        recorded = damage.load(self)[0]
        if not recorded:
            return

        def segments():
            for name in state.segments:
                try:
                    seg = IndexSegment.decode(self.aead, self.store.get(name), name)
                except (ObjectNotFound, IntegrityError):
                    continue
                yield seg.packs, seg.entries

        damage.steer(state.table, recorded, segments())

    def require_healthy_index(self) -> None:
        """Raise ``IndexDamaged`` if any index segment could not be read."""
        if self.index.damaged:
            names = ", ".join(n for n, _ in self.index.damaged[:5])
            raise IndexDamaged(
                f"the dedup table is damaged ({len(self.index.damaged)} bad index segment(s): {names}); "
                "refusing to write data that could be lost")

    def invalidate_index(self) -> None:
        """Forget the loaded index (it will be re-read on next use)."""
        self._index = None

    # ----------------------------------------------------------------- blobs
    def read_stored_blob(self, blob_id: bytes) -> bytes:
        """The stored (encrypted) bytes of a blob, located through the index."""
        loc = self.index.table.lookup(blob_id)
        if loc is None:
            raise IntegrityError(f"blob {blob_id.hex()} is not in the index (missing data)",
                                 hint="run 'ebas check'; 'ebas repair index' if packs are present")
        pack_id, offset, length = loc
        try:
            data = self.store.get(pack_name(pack_id), offset, length)
        except ObjectNotFound:
            raise IntegrityError(f"pack {pack_id.hex()[:16]} holding blob {blob_id.hex()[:16]} is missing",
                                 hint="run 'ebas check'; restore the pack from a replica if you have one") from None
        if len(data) != length:
            raise IntegrityError(f"pack {pack_id.hex()[:16]} is truncated (blob {blob_id.hex()[:16]})")
        return data

    def get_blob(self, blob_id: bytes) -> bytes:
        """The verified plaintext of a blob."""
        stored = self.read_stored_blob(blob_id)
        try:
            return self.codec.decode(blob_id, stored)
        except IntegrityError as exc:
            loc = self.index.table.lookup(blob_id)
            where = f" in pack {loc[0].hex()[:16]}" if loc else ""
            raise IntegrityError(f"blob {blob_id.hex()[:16]}{where} is corrupt: {exc.message}") from exc

    def get_blobs(self, blob_ids: list[bytes], max_read: int = 8 << 20, max_gap: int = 256 << 10) -> list[bytes]:
        """Verified plaintexts of several blobs, in the order asked. Blobs of one pack are
        read in pack order with one ranged read per run of at most ``max_read`` bytes,
        reading across gaps of up to ``max_gap`` bytes (one request instead of many: what
        object stores bill and what their latency punishes). A blob asked twice is read once."""
        table = self.index.table
        where: dict[bytes, tuple[bytes, int, int]] = {}
        for bid in blob_ids:
            if bid in where:
                continue
            loc = table.lookup(bid)
            if loc is None:
                raise IntegrityError(f"blob {bid.hex()} is not in the index (missing data)",
                                     hint="run 'ebas check'; 'ebas repair index' if packs are present")
            where[bid] = loc
        order = sorted(where, key=where.__getitem__)  # by pack, then offset
        plain: dict[bytes, bytes] = {}
        for i, j, pack, start, end in read_runs([where[b] for b in order], max_gap, max_read):
            if j == i + 1:
                plain[order[i]] = self.get_blob(order[i])
                continue
            try:
                data = self.store.get(pack_name(pack), start, end - start)
            except ObjectNotFound:
                raise IntegrityError(f"pack {pack.hex()[:16]} is missing",
                                     hint="run 'ebas check'; restore the pack from a replica if you have one") from None
            if len(data) != end - start:
                raise IntegrityError(f"pack {pack.hex()[:16]} is truncated")
            view = memoryview(data)
            for k in range(i, j):
                bid = order[k]
                off, ln = where[bid][1] - start, where[bid][2]
                try:
                    plain[bid] = self.codec.decode(bid, view[off : off + ln])
                except IntegrityError as exc:
                    raise IntegrityError(f"blob {bid.hex()[:16]} in pack {pack.hex()[:16]} is corrupt: "
                                         f"{exc.message}") from exc
        return [plain[bid] for bid in blob_ids]

    def has_blob(self, blob_id: bytes) -> bool:
        """True if the index knows the blob."""
        return blob_id in self.index.table

    def load_tree(self, tree_id: bytes) -> list[Node]:
        """The nodes of a tree blob."""
        return decode_tree(self.get_blob(tree_id))

    def pack_sizes(self) -> dict[bytes, int]:
        """``{pack id: size}`` of every pack object in the store."""
        out = {}
        for info in self.store.list("data/"):
            try:
                out[pack_id_from_name(info.name)] = info.size
            except IntegrityError:
                continue
        return out

    # ------------------------------------------------------------- snapshots
    def snapshots(self, *, refresh: bool = False) -> list[snaps.Snapshot]:
        """All readable snapshots, oldest first; unreadable ones go to ``snapshot_problems``."""
        if self._snapshots is None or refresh:
            out, problems = [], []
            for info in self.store.list(snaps.PREFIX):
                sid = info.name[len(snaps.PREFIX):]
                try:
                    out.append(snaps.unseal(self.aead, sid, self.store.get(info.name)))
                except ObjectNotFound:
                    continue
                except IntegrityError as exc:
                    problems.append(f"{info.name}: {exc.message}")
            if not self.config.authenticated:
                _refuse_downgrade(out)
            self._snapshots = sorted(out, key=lambda s: (s.time_ns, s.id))
            self.snapshot_problems = problems
        return list(self._snapshots)

    def find_snapshot(self, ref: str, *, host: str | list[str] | None = None, tags: list[str] | None = None,
                      path: str | None = None) -> snaps.Snapshot:
        """Resolve ``latest`` or an id prefix (see :func:`ebas.repo.snapshots.select`).

        An id prefix that names an unreadable (damaged) snapshot object raises
        ``IntegrityError`` (exit 13) saying so, not ``SnapshotNotFound``; a prefix matching
        both a readable and a damaged snapshot is ``AmbiguousSnapshot``."""
        readable = self.snapshots()
        try:
            found = snaps.select(readable, ref, host=host, tags=tags, path=path)
        except SnapshotNotFound:
            found = None
        damaged = self._damaged_matching(ref)
        if damaged and found is not None and ref != "latest":
            raise AmbiguousSnapshot(f"snapshot id prefix {ref!r} matches {found.id[:12]} and the damaged "
                                    f"snapshot {damaged[0][0][:12]}")
        if found is not None:
            return found
        if damaged:
            sid, why = damaged[0]
            raise IntegrityError(f"snapshot {sid[:12]} is damaged and cannot be read: {why}",
                                 hint=f"copy snapshots/{sid} from a replica if one has it; otherwise this snapshot "
                                      "cannot be restored ('ebas check' lists all damage)")
        return snaps.select(readable, ref, host=host, tags=tags, path=path)  # raises SnapshotNotFound

    def _damaged_matching(self, ref: str) -> list[tuple[str, str]]:
        """``(id, problem)`` of unreadable snapshot objects whose id starts with ``ref``."""
        if ref == "latest" or not ref:
            return []
        out = []
        for text in self.snapshot_problems:
            name, _, why = text.partition(": ")
            sid = name[len(snaps.PREFIX):] if name.startswith(snaps.PREFIX) else name
            if sid.startswith(ref.lower()):
                out.append((sid, why))
        return out

    def save_snapshot(self, snap: snaps.Snapshot) -> str:
        """Store a snapshot manifest (the commit point) and return its id."""
        if self.config.authenticated:  # lets a later reader detect a config stripped of its MAC
            snap.stats[CONFIG_AUTHENTICATED_STAT] = True
        sid, stored = snaps.seal(self.aead, snap)
        self.store.put(snaps.PREFIX + sid, stored)
        snap.id = sid
        if self._snapshots is not None:
            self._snapshots.append(snap)
        return sid

    def delete_snapshot(self, snap_id: str) -> None:
        """Remove a snapshot manifest (its data stays until prune)."""
        self.store.delete(snaps.PREFIX + snap_id)
        self._snapshots = None

    def session(self, **kwargs):
        """A new write session (see :class:`ebas.repo.session.WriteSession`)."""
        from ebas.repo.session import WriteSession

        return WriteSession(self, **kwargs)

    def close(self) -> None:
        """Release the store."""
        self.store.close()
