"""Fixtures shared by the repository, backup and end-to-end tests.

Everything here is fast: tiny KDF parameters, small packs (256 KiB, so even small test
trees spread over many packs), small chunks, and file stores without fsync.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from clihook import fast_kdf_pythonpath

from ebas.chunking.params import ChunkerParams
from ebas.crypto.kdf import KdfParams
from ebas.repo.repository import Repository
from ebas.runtime import SYSTEM_ENTROPY
from ebas.storage.backends.file import FileStore

PASSWORD = "correct horse battery staple"
SMALL_PACK = 256 * 1024
SMALL_CHUNKER = ChunkerParams(min_size=4096, avg_size=16384, max_size=65536)
EBAS_BIN = str(Path(sys.executable).with_name("ebas"))


@pytest.fixture(autouse=True, scope="session")
def _private_cache_dir(tmp_path_factory):
    """Catalogs and dedup caches made by tests (and by CLI subprocesses, which inherit the
    environment) go to a temporary directory, never to the user's ~/.cache."""
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    yield
    if old is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = old


# ------------------------------------------------------------------ repositories
@pytest.fixture
def fast_kdf() -> KdfParams:
    """KDF parameters that take well under a millisecond."""
    return KdfParams.fast_for_tests(SYSTEM_ENTROPY)


@pytest.fixture
def small_chunker() -> ChunkerParams:
    return SMALL_CHUNKER


@dataclass
class RepoFactory:
    """Creates and reopens file-store repositories under a temporary directory."""

    base: Path
    kdf: KdfParams

    def store(self, path: Path | str):
        return FileStore(path, fsync=False)

    def init(self, name: str = "repo", *, pack_size: int = SMALL_PACK, chunker: ChunkerParams | None = SMALL_CHUNKER,
             store=None, password: str = PASSWORD, **kw) -> Repository:
        st = store if store is not None else self.store(self.base / name)
        return Repository.init(st, password, chunker=chunker, pack_size=pack_size, kdf=self.kdf, **kw)

    def open(self, name_or_store="repo", *, password: str = PASSWORD, **kw) -> Repository:
        st = name_or_store if not isinstance(name_or_store, (str, Path)) else self.store(self.base / name_or_store)
        return Repository.open(st, password, **kw)

    def reopen(self, repo: Repository, **kw) -> Repository:
        """A fresh Repository object (nothing cached) over the same store."""
        return Repository.open(repo.store, PASSWORD, **kw)


@pytest.fixture
def repos(tmp_path, fast_kdf) -> RepoFactory:
    return RepoFactory(tmp_path, fast_kdf)


@pytest.fixture
def repo(repos) -> Repository:
    """A fresh, empty repository (256 KiB packs, 16 KiB average chunks)."""
    return repos.init()


# ------------------------------------------------------------- file-tree states
def _hash_file(path: bytes) -> str:
    h = hashlib.blake2b(digest_size=20)
    with open(path, "rb") as fh:
        while True:
            block = fh.read(1 << 20)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def _xattrs(path: bytes) -> dict:
    try:
        return {n: os.getxattr(path, n, follow_symlinks=False) for n in os.listxattr(path, follow_symlinks=False)}
    except OSError:
        return {}


def tree_state(root: str | bytes | Path, *, content: bool = True, times: bool = True,
               root_meta: bool = False) -> dict[bytes, tuple]:
    """Everything that a faithful restore must reproduce, keyed by relative path (bytes).

    Per entry: type, permission bits, size, mtime (ns), xattrs, symlink target, content
    hash, and a hard-link group label (the first path of the inode's links), so equal
    states mean bit-for-bit equal trees with equal metadata and equal link structure.
    """
    root = os.fsencode(os.fspath(root))
    out: dict[bytes, tuple] = {}
    inodes: dict[tuple[int, int], bytes] = {}

    def visit(path: bytes, rel: bytes) -> None:
        st = os.lstat(path)
        kind = stat.S_IFMT(st.st_mode)
        link = b""
        digest = ""
        group = b""
        if stat.S_ISLNK(st.st_mode):
            link = os.readlink(path)
        elif stat.S_ISREG(st.st_mode):
            if content:
                digest = _hash_file(path)
            if st.st_nlink > 1:
                group = inodes.setdefault((st.st_dev, st.st_ino), rel)
        size = st.st_size if not stat.S_ISDIR(st.st_mode) else 0
        mtime = st.st_mtime_ns if times and not stat.S_ISLNK(st.st_mode) else 0
        if rel or root_meta:
            out[rel] = (kind, stat.S_IMODE(st.st_mode) if not stat.S_ISLNK(st.st_mode) else 0, size, mtime,
                        _xattrs(path), link, digest, group)
        if stat.S_ISDIR(st.st_mode):
            for name in sorted(os.listdir(path)):
                visit(path + b"/" + name, rel + b"/" + name if rel else name)

    visit(root, b"")
    return out


@pytest.fixture(scope="session")
def state():
    """``state(path)``: the comparable state of a directory tree (see ``tree_state``)."""
    return tree_state


def restored_path(target: str | Path, source: str | Path) -> Path:
    """Where ``source`` (an absolute path that was backed up) ends up under ``target``."""
    return Path(target) / os.path.abspath(source).lstrip("/")


@pytest.fixture(scope="session")
def under():
    return restored_path


# -------------------------------------------------------------------- tmpfs dirs
@pytest.fixture
def shm_dir():
    """A scratch directory on tmpfs (/dev/shm) when there is one: many small files are
    created and restored much faster there. Falls back to a normal temp dir."""
    base = Path("/dev/shm")
    if base.is_dir() and os.access(base, os.W_OK):
        path = base / f"ebas-test-{uuid.uuid4().hex[:12]}"
        path.mkdir()
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)
    else:  # pragma: no cover - machines without /dev/shm
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            yield Path(d)


# ------------------------------------------------------------------------ CLI
@dataclass
class Cli:
    """Runs the real ``ebas`` executable with a repository and password in the environment."""

    repo: str
    env: dict

    def __call__(self, *args: str, input: bytes | None = None, env: dict | None = None, timeout: float = 120,
                 repo: str | None = None) -> subprocess.CompletedProcess:
        full_env = dict(self.env)
        if env:
            for k, v in env.items():
                if v is None:
                    full_env.pop(k, None)
                else:
                    full_env[k] = v
        cmd = [EBAS_BIN]
        r = self.repo if repo is None else repo
        if r:
            cmd += ["--repo", r]
        return subprocess.run(cmd + list(args), input=input, capture_output=True, env=full_env, timeout=timeout)

    def ok(self, *args: str, **kw) -> subprocess.CompletedProcess:
        """Run and insist on exit code 0 (shows stderr otherwise)."""
        res = self(*args, **kw)
        assert res.returncode == 0, f"ebas {' '.join(args)} exited {res.returncode}:\n{res.stderr.decode(errors='replace')}"
        return res

    def popen(self, *args: str, **kw) -> subprocess.Popen:
        return subprocess.Popen([EBAS_BIN, "--repo", self.repo, *args], env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def cli_env() -> dict:
    """The environment for CLI subprocesses: password set, the fast-KDF test hook on
    PYTHONPATH, no EBAS_* settings leaking in from the caller's environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EBAS_")}
    env.update(EBAS_PASSWORD=PASSWORD, PYTHONPATH=fast_kdf_pythonpath())
    return env


@pytest.fixture(scope="session")
def make_cli():
    """``make_cli(repo_path)``: a :class:`Cli` bound to that repository path."""
    return lambda repo_path: Cli(str(repo_path), cli_env())


@pytest.fixture
def cli(tmp_path) -> Cli:
    """The ``ebas`` CLI bound to ``tmp_path/repo`` with a fast KDF for ``init``."""
    return Cli(str(tmp_path / "repo"), cli_env())


# Hypothesis: no per-example deadline. The machines running this suite are shared and
# noisy; a slow example is not a failure (the tests assert results, not speed).
from hypothesis import settings as _hyp_settings  # noqa: E402

_hyp_settings.register_profile("ebas", deadline=None)
_hyp_settings.load_profile("ebas")
