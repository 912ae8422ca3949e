"""Exclude patterns (``--exclude`` / ``--exclude-file``), as restic users know them.

A pattern without ``/`` matches any path component (``*.tmp``, ``node_modules``); a
pattern with ``/`` matches the whole absolute path or any prefix of it (``/home/*/.cache``);
a trailing ``/`` restricts the pattern to directories. Matching works on raw bytes so
names that are not valid UTF-8 are handled.
"""

from __future__ import annotations

import fnmatch
import os
import re

from ebas.errors import UsageError


class ExcludeMatcher:
    """Compiled exclude patterns."""

    def __init__(self, patterns: list[str]):
        self.name_res: list[tuple[re.Pattern, bool]] = []
        self.path_res: list[tuple[re.Pattern, bool]] = []
        for raw in patterns:
            p = raw.strip()
            if not p or p.startswith("#"):
                continue
            dir_only = p.endswith("/") and len(p) > 1
            p = p.rstrip("/") if dir_only else p
            rx = re.compile(fnmatch.translate(p).encode("utf-8", "surrogateescape"), re.DOTALL)
            (self.path_res if "/" in p else self.name_res).append((rx, dir_only))

    @classmethod
    def from_files(cls, patterns: list[str], files: list[str]) -> "ExcludeMatcher":
        """Patterns given directly plus those read from ``--exclude-file`` files."""
        allp = list(patterns)
        for f in files:
            try:
                with open(f, encoding="utf-8", errors="surrogateescape") as fh:
                    allp.extend(line.rstrip("\n") for line in fh)
            except OSError as exc:
                raise UsageError(f"cannot read exclude file {f!r}: {exc.strerror}") from exc
        return cls(allp)

    def excluded(self, path: bytes, is_dir: bool) -> bool:
        """True if the absolute ``path`` (bytes) is excluded."""
        if not self.name_res and not self.path_res:
            return False
        name = os.path.basename(path)
        for rx, dir_only in self.name_res:
            if (is_dir or not dir_only) and rx.match(name):
                return True
        for rx, dir_only in self.path_res:
            if (is_dir or not dir_only) and rx.match(path):
                return True
        return False
