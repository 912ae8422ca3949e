"""Local files only their owner may read: the catalog, the caches, local state.

The catalog holds every backed-up path in plain text and the caches hold repository
metadata; whatever the process umask (022 is common), what ebas creates for them is
mode 0700 (directories) or 0600 (files). :func:`cache_home` is the one place that knows
where ebas keeps local state (``$XDG_CACHE_HOME/ebas``, else ``~/.cache/ebas``).
"""

from __future__ import annotations

import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def cache_home() -> Path:
    """``$XDG_CACHE_HOME/ebas`` (``~/.cache/ebas`` when unset): ebas's local state."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ebas"


def private_dir(path: str | os.PathLike) -> Path:
    """Create ``path`` and every missing parent with mode 0700 (the umask cannot widen
    it) and return it. Existing directories keep their mode, except ebas's own cache
    home (:func:`cache_home`) and directories inside it, which are narrowed to 0700 when
    this user owns them (older versions created them 0755)."""
    p = Path(path)
    missing = []
    q = p
    while not q.exists():
        missing.append(q)
        if q.parent == q:
            break
        q = q.parent
    for d in reversed(missing):
        try:
            os.mkdir(d, DIR_MODE)
        except FileExistsError:
            continue
        os.chmod(d, DIR_MODE)  # mkdir's mode passes through the umask; chmod does not
    home = cache_home()
    for d in [p, *p.parents]:
        if d == home or home in d.parents:
            _narrow(d, DIR_MODE)
    return p


def _narrow(path: Path, mode: int) -> None:
    try:
        st = os.stat(path, follow_symlinks=False)
        if st.st_uid == os.getuid() and st.st_mode & 0o777 & ~mode:
            os.chmod(path, mode)
    except OSError:
        pass


def create_private_file(path: str | os.PathLike) -> bool:
    """Create ``path`` empty with mode 0600 if it does not exist (parents via
    :func:`private_dir`); True if it was created. An existing file is left alone."""
    p = Path(path)
    private_dir(p.parent)
    try:
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    except FileExistsError:
        return False
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    return True


def open_private(path: str | os.PathLike, mode: str = "wb"):
    """Open ``path`` for writing (truncating), created with mode 0600; a file object."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, FILE_MODE)
    os.fchmod(fd, FILE_MODE)
    return os.fdopen(fd, mode)


def write_private(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file, then rename), mode 0600."""
    p = Path(path)
    tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
    with open_private(tmp) as fh:
        fh.write(data)
    os.replace(tmp, p)


__all__ = ["cache_home", "create_private_file", "open_private", "private_dir", "write_private"]
