"""Plain-text rendering helpers for the CLI (tables, sizes, times)."""

from __future__ import annotations

import stat
from datetime import datetime


def human_size(n: float) -> str:
    """``1536`` -> ``1.5 KiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"


def local_time(ns: int) -> str:
    """Nanoseconds since the epoch as local ``YYYY-MM-DD HH:MM:SS``."""
    return datetime.fromtimestamp(ns / 1e9).strftime("%Y-%m-%d %H:%M:%S")


def table(headers: list[str], rows: list[list]) -> str:
    """A left-aligned text table."""
    cells = [[str(c) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    out = [line, "-" * len(line)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    return "\n".join(out)


_TYPE_CHAR = {"file": "-", "dir": "d", "symlink": "l", "chardev": "c", "blockdev": "b", "fifo": "p", "socket": "s"}


def mode_string(node_type: str, mode: int) -> str:
    """``drwxr-xr-x`` style permissions."""
    return _TYPE_CHAR.get(node_type, "?") + stat.filemode(mode | stat.S_IFREG)[1:]
