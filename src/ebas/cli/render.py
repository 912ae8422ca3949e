"""Plain-text rendering helpers for the CLI (tables, sizes, times, terminal-safe names)."""

from __future__ import annotations

import re
import stat
from datetime import datetime

# C0 and C1 controls, DEL, line/paragraph separators, bidirectional overrides, lone surrogates
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
                     "\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _escape(match: re.Match) -> str:
    c = match.group()
    if c in _NAMED:
        return _NAMED[c]
    o = ord(c)
    if 0xDC80 <= o <= 0xDCFF:  # an undecodable byte carried by os.fsdecode
        return f"\\x{o - 0xDC00:02x}"
    return f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}"


def printable(text: str | None) -> str:
    """``text`` safe to print on a terminal, on one line.

    Control characters (ESC sequences, CR, newline, tab, C1 controls such as CSI), bidi
    overrides and line separators become escapes (``\\x1b``, ``\\n``, ``\\u202e``), and
    bytes that were not UTF-8 (surrogate escapes of ``os.fsdecode``) become ``\\xNN``, so a
    hostile file name can neither move the cursor, recolour the terminal, nor fake a line.
    Backslashes are left as they are; ``None`` gives ``""``. Text output only: ``--json``
    keeps the real names.
    """
    if not text:
        return ""
    return text if text.isprintable() else _UNSAFE.sub(_escape, text)


def printable_lines(text: str) -> str:
    """:func:`printable` for each line of a multi-line message (its own newlines kept)."""
    return "\n".join(printable(line) for line in text.split("\n"))


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
