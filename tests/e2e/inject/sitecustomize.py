"""Test-only fault injection for ebas subprocesses (put on PYTHONPATH by tests/e2e).

``EBAS_TEST_DENY_OPEN=/a/b:/c/d`` makes ``os.open`` of exactly those paths fail with
EACCES, as an unreadable file would for a non-root user (the tests run as root, whom
``chmod 000`` does not stop).
"""

import errno
import os

_deny = {os.fsencode(p) for p in os.environ.get("EBAS_TEST_DENY_OPEN", "").split(":") if p}
if _deny:
    _real_open = os.open

    def _open(path, flags, *args, **kwargs):
        if isinstance(path, (str, bytes)):
            full = os.fsencode(path)
            if kwargs.get("dir_fd") is not None and not full.startswith(b"/"):
                full = os.fsencode(os.readlink(f"/proc/self/fd/{kwargs['dir_fd']}")) + b"/" + full
            if full in _deny:
                raise PermissionError(errno.EACCES, "Permission denied", path)
        return _real_open(path, flags, *args, **kwargs)

    os.open = _open
