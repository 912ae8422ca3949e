"""The one grammar for the values people type: sizes, durations, points in time, rates, percentages.

Every flag, API helper, store URL option and (later) configuration key reads these values
through this module, so ``15min`` means the same thing everywhere. The grammar is
written down for users in ``docs/units.md``::

    parse_size("1.5MiB")        -> 1572864          bytes (K/M/G/T/P and KiB.. = 1024-based; KB/MB.. = 1000-based)
    parse_duration("1h30min")   -> 5400.0           seconds (ms s min h d w mo=30d y=365d; a bare "m" is refused)
    parse_time("7d", now=...)   -> now - 7 days     an aware datetime (ISO 8601, now, today, yesterday, @EPOCH)
    parse_rate("100Mbit/s")     -> 12500000.0       bytes per second ("off" = 0.0, "unlimited" = inf)
    parse_percent("10%")        -> 0.1              a fraction between 0 and 1

The ``format_*`` functions print the largest unit that represents a value exactly, so
``parse(format(x)) == x``. Kernel module: imports only :mod:`ebas.errors` and the
standard library. Every refusal is a :class:`~ebas.errors.UsageError` whose hint says
what to write instead.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation

from ebas.errors import UsageError

__all__ = [
    "DURATION_UNITS", "SIZE_UNITS", "epoch_ns", "format_duration", "format_rate", "format_size", "parse_duration",
    "parse_percent", "parse_rate", "parse_size", "parse_time",
]

# ------------------------------------------------------------------ sizes
_BINARY = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_DECIMAL = {"k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "p": 10**15}
#: size unit (lower case) -> bytes; single letters are binary, as in restic and rclone
SIZE_UNITS: dict[str, int] = {"": 1, "b": 1}
for _p, _v in _BINARY.items():
    SIZE_UNITS[_p] = SIZE_UNITS[_p + "ib"] = _v
for _p, _v in _DECIMAL.items():
    SIZE_UNITS[_p + "b"] = _v
_SIZE_HINT = ("write a number with an optional unit: B, K/KiB, M/MiB, G/GiB, T/TiB, P/PiB (1024-based) or "
              "KB, MB, GB, TB, PB (1000-based), e.g. 512, 64KiB, 1.5MiB, 2GiB")
_NUMBER = r"(\d+(?:\.\d*)?|\.\d+)"
_SIZE = re.compile(_NUMBER + r"\s*([a-z]*)")
# format_size: units tried from the largest; binary before decimal of the same prefix
_SIZE_OUT = [("PiB", 1 << 50), ("PB", 10**15), ("TiB", 1 << 40), ("TB", 10**12), ("GiB", 1 << 30), ("GB", 10**9),
             ("MiB", 1 << 20), ("MB", 10**6), ("KiB", 1 << 10), ("KB", 10**3)]


def _exact(number: str) -> Decimal:
    try:
        return Decimal(number)
    except InvalidOperation:  # pragma: no cover - the regular expressions only let digits through
        raise UsageError(f"cannot read the number {number!r}") from None


def _size_exact(text: str, what: str) -> Decimal:
    """Bytes as an exact decimal (fractions kept), or a UsageError naming ``what``."""
    t = str(text).strip()
    if t.startswith("-"):
        raise UsageError(f"a {what} cannot be negative: {text!r}", hint=_SIZE_HINT)
    m = _SIZE.fullmatch(t.lower())
    if not m:
        raise UsageError(f"cannot read the {what} {text!r}", hint=_SIZE_HINT)
    unit = m.group(2)
    if unit not in SIZE_UNITS:
        raise UsageError(f"unknown size unit {unit!r} in {text!r}", hint=_SIZE_HINT)
    return _exact(m.group(1)) * SIZE_UNITS[unit]


def parse_size(text: str) -> int:
    """Bytes from ``512``, ``4096B``, ``64KiB``, ``1.5MiB``, ``2GiB``, ``1TiB`` (1024-based),
    ``10MB`` (1000-based) or a single letter ``K/M/G/T/P`` (1024-based, as restic and rclone).
    Letters are case-insensitive; a fraction is rounded down to a whole byte. Negative
    sizes and unknown units are refused with a UsageError."""
    return int(_size_exact(text, "size"))


def format_size(n: int) -> str:
    """``n`` bytes in the largest unit that holds it exactly (``64KiB``, ``1GB``, ``4097B``);
    ``parse_size(format_size(n)) == n``."""
    n = int(n)
    if n < 0:
        raise ValueError(f"a size cannot be negative: {n}")
    for unit, factor in _SIZE_OUT:
        if n and n % factor == 0:
            return f"{n // factor}{unit}"
    return f"{n}B"


# ------------------------------------------------------------------ durations
DAY = 86400
#: duration unit -> seconds ("mo" is 30 days, "y" 365 days); long spellings are accepted too
DURATION_UNITS: dict[str, Decimal] = {
    "ms": Decimal("0.001"), "s": Decimal(1), "sec": Decimal(1), "secs": Decimal(1), "second": Decimal(1),
    "seconds": Decimal(1), "min": Decimal(60), "mins": Decimal(60), "minute": Decimal(60), "minutes": Decimal(60),
    "h": Decimal(3600), "hour": Decimal(3600), "hours": Decimal(3600), "d": Decimal(DAY), "day": Decimal(DAY),
    "days": Decimal(DAY), "w": Decimal(7 * DAY), "week": Decimal(7 * DAY), "weeks": Decimal(7 * DAY),
    "mo": Decimal(30 * DAY), "month": Decimal(30 * DAY), "months": Decimal(30 * DAY), "y": Decimal(365 * DAY),
    "year": Decimal(365 * DAY), "years": Decimal(365 * DAY),
}
_DURATION_HINT = ("write numbers with units ms, s, min, h, d, w, mo (30 days) or y (365 days), "
                  "e.g. 90s, 15min, 36h, 7d, 6mo, 1y6mo, 1h30min")
_TERM = re.compile(_NUMBER + r"\s*([a-z]*)\s*")
# format_duration: whole units only; "mo" is never printed (6mo prints as 180d: it says what it means)
_DURATION_OUT = [("y", 365 * DAY), ("w", 7 * DAY), ("d", DAY), ("h", 3600), ("min", 60), ("s", 1)]


def _duration_exact(text: str) -> Decimal:
    t = str(text).strip().lower()
    if t.startswith("-"):
        raise UsageError(f"a duration cannot be negative: {text!r}", hint=_DURATION_HINT)
    if not t:
        raise UsageError("empty duration", hint=_DURATION_HINT)
    if re.fullmatch(_NUMBER, t):
        if Decimal(t) == 0:
            return Decimal(0)
        raise UsageError(f"the duration {text!r} has no unit: write {t}s, {t}min, {t}h or {t}d", hint=_DURATION_HINT)
    pos, total = 0, Decimal(0)
    while pos < len(t):
        m = _TERM.match(t, pos)
        if not m or not m.group(2):
            raise UsageError(f"cannot read the duration {text!r}", hint=_DURATION_HINT)
        number, unit = m.group(1), m.group(2)
        if unit == "m":
            raise UsageError(f"the duration {text!r} is ambiguous: write {number}min for minutes or {number}mo "
                             "for months (30 days)", hint=_DURATION_HINT)
        if unit not in DURATION_UNITS:
            raise UsageError(f"unknown duration unit {unit!r} in {text!r}", hint=_DURATION_HINT)
        total += _exact(number) * DURATION_UNITS[unit]
        pos = m.end()
    return total


def parse_duration(text: str) -> float:
    """Seconds from ``90s``, ``500ms``, ``15min``, ``2h``, ``7d``, ``2w``, ``6mo`` (30 days),
    ``1y`` (365 days), or a sum such as ``1h30min`` or ``1y6mo``. A bare ``m`` is refused
    (write ``min`` or ``mo``); so are a number without a unit (except ``0``), a negative
    duration and an unknown unit."""
    return float(_duration_exact(text))


def _plain(x: float) -> str:
    """The shortest decimal that reads back as ``x``, without an exponent."""
    return format(Decimal(repr(float(x))), "f")


def format_duration(seconds: float | timedelta) -> str:
    """``seconds`` in the largest unit that holds it exactly (``2w``, ``36h``, ``90s``,
    ``500ms``; never ``mo``); ``parse_duration(format_duration(x)) == x``."""
    if isinstance(seconds, timedelta):
        seconds = seconds.total_seconds()
    x = float(seconds)
    if x < 0 or not math.isfinite(x):
        raise ValueError(f"not a duration: {seconds!r}")
    if x.is_integer():
        n = int(x)
        for unit, factor in _DURATION_OUT:
            if n and n % factor == 0:
                return f"{n // factor}{unit}"
        return "0s"
    ms = Decimal(repr(x)) * 1000
    if ms == ms.to_integral_value():
        return f"{int(ms)}ms"
    return _plain(x) + "s"


# ------------------------------------------------------------------ points in time
_TIME_HINT = ("write an ISO 8601 date or time (2026-03-01, 2026-03-01T12:00, 2026-03-01T12:00Z, "
              "2026-03-01T12:00+02:00), now, today, yesterday, @EPOCH_SECONDS, or an age such as 7d or 6mo")


def _local_midnight(day) -> datetime:
    return datetime(day.year, day.month, day.day).astimezone()


def _shift(now: datetime, sign: int, text: str, original: str) -> datetime:
    try:
        return now + sign * timedelta(seconds=parse_duration(text))
    except OverflowError:
        raise UsageError(f"the time {original!r} is out of range", hint=_TIME_HINT) from None


def parse_time(text: str, *, now: datetime | None = None) -> datetime:
    """A timezone-aware point in time: ISO 8601 (``2026-03-01``, ``2026-03-01T12:00``, with an
    offset or ``Z``; without one it is local time), ``now``, ``today`` / ``yesterday`` (local
    midnight), ``@EPOCH_SECONDS``, or a duration meaning that long before ``now`` (``7d``,
    ``6mo``, ``12h ago``). ``+DURATION`` means that long after ``now``."""
    t = str(text).strip()
    if now is None:
        now = datetime.now(timezone.utc)
    elif now.tzinfo is None:
        now = now.astimezone()
    low = t.lower()
    if low == "now":
        return now
    if low in ("today", "yesterday"):
        day = now.astimezone().date() - timedelta(days=1 if low == "yesterday" else 0)
        return _local_midnight(day)
    if low.startswith("@"):
        try:
            return datetime.fromtimestamp(float(Decimal(low[1:])), timezone.utc)
        except (InvalidOperation, ValueError, OverflowError):
            raise UsageError(f"cannot read the time {text!r}", hint=_TIME_HINT) from None
    if low.startswith("+"):
        return _shift(now, 1, low[1:], text)
    try:
        dt = datetime.fromisoformat(t[:-1] + "+00:00" if t.endswith(("z", "Z")) else t)
    except ValueError:
        if not re.fullmatch(r"[\d.]+\s*[a-z][a-z\d.\s]*", low):
            raise UsageError(f"cannot read the time {text!r}", hint=_TIME_HINT) from None
        return _shift(now, -1, low[:-3] if low.endswith("ago") else low, text)
    return dt.astimezone() if dt.tzinfo is None else dt


def epoch_ns(when: datetime) -> int:
    """``when`` as exact integer nanoseconds since the epoch (naive means local time), the
    form the repository and the catalog store."""
    if when.tzinfo is None:
        when = when.astimezone()
    delta = when - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86400 + delta.seconds) * 10**9 + delta.microseconds * 1000


# ------------------------------------------------------------------ rates
_RATE_HINT = ("write a size per second (50MiB/s, 10MB/s, 500KiB/s), bits per second (100Mbit/s, 1Gbit/s), "
              "off (paused) or unlimited")
_BITS = re.compile(_NUMBER + r"\s*([kmgtp]i?)?bits?/s")
_BIT_PREFIX = {"": 1, **_DECIMAL, **{p + "i": v for p, v in _BINARY.items()}}
_BIT_OUT = [("Pbit", 10**15), ("Tbit", 10**12), ("Gbit", 10**9), ("Mbit", 10**6), ("kbit", 10**3)]


def parse_rate(text: str) -> float:
    """Bytes per second from ``50MiB/s``, ``10MB/s``, ``500KiB/s`` (size units of
    :func:`parse_size`), ``100Mbit/s`` or ``1Gbit/s`` (decimal bits, divided by 8),
    ``off`` (0.0: paused) or ``unlimited`` (``math.inf``). ``100Mb/s`` is refused as
    ambiguous (bits or bytes?)."""
    t = str(text).strip()
    low = t.lower()
    if low == "off":
        return 0.0
    if low == "unlimited":
        return math.inf
    if low.startswith("-"):
        raise UsageError(f"a rate cannot be negative: {text!r}", hint=_RATE_HINT)
    m = _BITS.fullmatch(low)
    if m:
        return float(_exact(m.group(1)) * _BIT_PREFIX[m.group(2) or ""] / 8)
    if not low.endswith("/s"):
        raise UsageError(f"cannot read the rate {text!r}: a rate needs '/s'", hint=_RATE_HINT)
    amount = t[:-2].strip()
    unit = re.sub(r"^[\d.\s]*", "", amount)
    if unit.endswith("b"):  # Mb/s: megabits or megabytes?
        raise UsageError(f"the rate {text!r} is ambiguous: write {amount[:-1]}bit/s for bits or {amount[:-1]}B/s "
                         "for bytes", hint=_RATE_HINT)
    return float(_size_exact(amount, "rate"))


def format_rate(bps: float) -> str:
    """Bytes per second as ``64MiB/s``, ``100Mbit/s`` (when only bits are whole), ``off`` (0)
    or ``unlimited`` (inf); ``parse_rate(format_rate(x)) == x``."""
    x = float(bps)
    if x < 0 or math.isnan(x):
        raise ValueError(f"not a rate: {bps!r}")
    if x == 0:
        return "off"
    if math.isinf(x):
        return "unlimited"
    if x.is_integer():
        return format_size(int(x)) + "/s"
    bits = Decimal(repr(x)) * 8
    if bits == bits.to_integral_value():
        n = int(bits)
        for unit, factor in _BIT_OUT:
            if n % factor == 0:
                return f"{n // factor}{unit}/s"
        return f"{n}bit/s"
    return _plain(x) + "B/s"


# ------------------------------------------------------------------ percentages
_PERCENT_HINT = "write a percentage between 0% and 100%, e.g. 10% or 2.5%"


def parse_percent(text: str) -> float:
    """A fraction from a percentage: ``10%`` -> 0.10, ``2.5%`` -> 0.025. The ``%`` is required
    (``0.1`` could mean 10% or 0.1%), except for ``0``. Values must lie in 0%..100%."""
    t = str(text).strip()
    m = re.fullmatch(_NUMBER + r"\s*%", t)
    if not m:
        if re.fullmatch(r"0+(\.0*)?", t):
            return 0.0
        if t.startswith("-"):
            raise UsageError(f"a percentage cannot be negative: {text!r}", hint=_PERCENT_HINT)
        if re.fullmatch(_NUMBER, t):
            raise UsageError(f"the percentage {text!r} needs a '%' sign: write {t}% (or {float(Decimal(t) * 100):g}% "
                             "if it is a fraction)", hint=_PERCENT_HINT)
        raise UsageError(f"cannot read the percentage {text!r}", hint=_PERCENT_HINT)
    value = _exact(m.group(1))
    if value > 100:
        raise UsageError(f"the percentage {text!r} is above 100%", hint=_PERCENT_HINT)
    return float(value / 100)
