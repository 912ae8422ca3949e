"""Parsing of the values people type: sizes, times, durations and permission filters.

Pure functions, shared by the CLI and the Python API::

    parse_size_filter(">100M")      -> (104857601, None)
    parse_size_filter("1k..2M")     -> (1024, 2097152)
    parse_time("2024-03-01")        -> ns since the epoch (local midnight)
    parse_time("7d", now_ns=...)    -> seven days before now
    parse_mode_filter("setuid")     -> (0o4000, 0o4000): mode & mask == want
"""

from __future__ import annotations

import re
from datetime import datetime

from ebas.errors import UsageError

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_DURATIONS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
MODE_WORDS = {
    "world-writable": 0o002, "group-writable": 0o020, "world-readable": 0o004, "setuid": 0o4000,
    "setgid": 0o2000, "sticky": 0o1000, "executable": 0o100,
}


def parse_size(text: str) -> int:
    """``10``, ``1.5k``, ``100M``, ``2GiB`` -> bytes (binary units)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgtpb]?)(?:i?b)?\s*", text.lower())
    if not m:
        raise UsageError(f"cannot read size {text!r}", hint="use a number with an optional K, M, G or T suffix")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def parse_size_filter(text: str) -> tuple[int | None, int | None]:
    """``(min, max)`` inclusive bounds from ``>N``, ``>=N``, ``<N``, ``<=N``, ``+N``, ``-N``, ``A..B`` or ``N``."""
    t = text.strip()
    if ".." in t:
        a, b = t.split("..", 1)
        return (parse_size(a) if a.strip() else None), (parse_size(b) if b.strip() else None)
    for op, fn in ((">=", lambda v: (v, None)), ("<=", lambda v: (None, v)), (">", lambda v: (v + 1, None)),
                   ("<", lambda v: (None, v - 1)), ("+", lambda v: (v + 1, None)), ("-", lambda v: (None, v - 1))):
        if t.startswith(op):
            return fn(parse_size(t[len(op):]))
    v = parse_size(t)
    return v, v


def parse_time(text: str, now_ns: int | None = None) -> int:
    """A point in time as ns since the epoch.

    Accepts ISO 8601 (``2024-03-01``, ``2024-03-01T12:00``, with or without a zone; local
    time without one), ``@SECONDS``, ``now``, and ages such as ``7d``, ``12h``, ``2w``.
    """
    import time as _time

    t = text.strip()
    now = now_ns if now_ns is not None else _time.time_ns()
    if t == "now":
        return now
    if t.startswith("@"):
        try:
            return int(float(t[1:]) * 1e9)
        except ValueError:
            pass
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhdwy])(?:\s*ago)?", t.lower())
    if m:
        return now - int(float(m.group(1)) * _DURATIONS[m.group(2)] * 1e9)
    try:
        dt = datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"cannot read time {text!r}",
                         hint="use ISO 8601 (2024-03-01 or 2024-03-01T12:00), @EPOCH_SECONDS, or an age like 7d"
                         ) from None
    if dt.tzinfo is None:
        dt = dt.astimezone()
    return int(dt.timestamp()) * 10**9 + dt.microsecond * 1000


def parse_mode_filter(text: str) -> tuple[int, int]:
    """``(mask, want)`` such that a mode matches when ``mode & mask == want``.

    Words (``world-writable``, ``setuid``, ``setgid``, ``sticky``, ``group-writable``,
    ``executable``; comma-separated means all of them), ``-OCTAL`` (all these bits set)
    or ``OCTAL`` (exactly this mode).
    """
    t = text.strip().lower()
    words = [w.strip() for w in t.split(",") if w.strip()]
    if words and all(w in MODE_WORDS for w in words):
        bits = 0
        for w in words:
            bits |= MODE_WORDS[w]
        return bits, bits
    m = re.fullmatch(r"(-?)0?([0-7]{1,4})", t)
    if not m:
        raise UsageError(f"cannot read mode filter {text!r}",
                         hint="use " + ", ".join(MODE_WORDS) + ", -OCTAL (these bits set) or OCTAL (exact)")
    bits = int(m.group(2), 8)
    return (bits, bits) if m.group(1) else (0o7777, bits)
