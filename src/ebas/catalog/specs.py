"""Parsing of the filters people type into ``ebas find``: size ranges and permission bits.

Pure functions, shared by the CLI and the Python API. The numbers inside a size filter
(and every time and duration) are read by :mod:`ebas.units`, the one grammar::

    parse_size_filter(">100M")      -> (104857601, None)
    parse_size_filter("1k..2M")     -> (1024, 2097152)
    parse_mode_filter("setuid")     -> (0o4000, 0o4000): mode & mask == want
"""

from __future__ import annotations

import re

from ebas.errors import UsageError
from ebas.units import parse_size

MODE_WORDS = {
    "world-writable": 0o002, "group-writable": 0o020, "world-readable": 0o004, "setuid": 0o4000,
    "setgid": 0o2000, "sticky": 0o1000, "executable": 0o100,
}


def parse_size_filter(text: str) -> tuple[int | None, int | None]:
    """``(min, max)`` inclusive bounds from ``>N``, ``>=N``, ``<N``, ``<=N``, ``+N``, ``-N``, ``A..B`` or ``N``;
    each N is a size of :func:`ebas.units.parse_size` (``100M``, ``1.5GiB``, ``10MB``)."""
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
