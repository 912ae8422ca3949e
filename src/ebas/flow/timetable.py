"""Bandwidth timetables: which rate applies at a moment of the week.

The grammar, one rule per ``;``-separated part::

    [DAYS] [HH:MM-HH:MM] RATE          e.g.  Mon-Fri 08:00-18:00 10MiB/s
    else RATE                          the rate outside every rule (default: unlimited)

``DAYS`` is ``*`` (every day, also the default), a day (``Mon``), a range (``Mon-Fri``,
``Fri-Mon`` wraps) or a list (``Sat,Sun``); day names are the English three-letter ones,
case-insensitive. A time range that ends before it starts crosses midnight: ``Fri
22:00-06:00`` runs from Friday 22:00 to Saturday 06:00. ``RATE`` is a rate of
:mod:`ebas.units` (``50MiB/s``, ``100Mbit/s``), ``off`` (paused) or ``unlimited``.

Rules are read in order and the first rule that covers a minute gives its rate, as in a
firewall: ``Sat-Sun off; * 18:00-08:00 unlimited`` keeps weekends off and weekday nights
unlimited. A rule that earlier rules cover entirely could never apply and is refused,
naming it and the rules that hide it; partial overlaps are allowed and listed in
:attr:`Timetable.overlaps` so a front end can show them. Resolution is one minute; times
are the wall-clock time of the zone the caller passes (the local zone by default), so a
daylight-saving change moves the windows with the clock on the wall, as an administrator
expects.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from ebas.errors import UsageError
from ebas.units import format_rate, parse_rate

DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
MINUTES_PER_WEEK = 7 * 24 * 60
_TIME = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")
HINT = "write rules like 'Mon-Fri 08:00-18:00 10MiB/s; Sat-Sun off; else unlimited' (see docs/units.md)"


@dataclass(frozen=True)
class Rule:
    """One rule of a timetable: the minutes of the week it covers and its rate (bytes/s)."""

    text: str
    minutes: frozenset[int]
    rate: float


_DAY_NAMES = {name: i for i, d in enumerate(DAYS)
              for name in (d, ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"][i])}


def _day(text: str, part: str) -> int:
    try:
        return _DAY_NAMES[text.strip().lower()]
    except KeyError:
        raise UsageError(f"bandwidth timetable: {part!r} is not a day or a day range",
                         hint="days are Mon Tue Wed Thu Fri Sat Sun, ranges like Mon-Fri, lists like Sat,Sun, or *") from None


def _days(text: str, rule: str) -> list[int]:
    if text == "*":
        return list(range(7))
    out: list[int] = []
    for part in text.split(","):
        ends = part.split("-")
        if len(ends) > 2:
            _day("", part)
        first = _day(ends[0], part)
        last = _day(ends[-1], part)
        d = first
        out.append(d)
        while d != last:
            d = (d + 1) % 7
            out.append(d)
    return out


def _span(text: str, rule: str) -> tuple[int, int]:
    m = _TIME.match(text)
    if not m:
        raise UsageError(f"bandwidth timetable: {text!r} in rule {rule!r} is not a time range HH:MM-HH:MM", hint=HINT)
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    if h1 > 24 or h2 > 24 or m1 > 59 or m2 > 59 or (h1 == 24 and m1) or (h2 == 24 and m2):
        raise UsageError(f"bandwidth timetable: {text!r} in rule {rule!r} is not a valid time of day", hint=HINT)
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if start == end:
        raise UsageError(f"bandwidth timetable: the time range {text!r} in rule {rule!r} is empty",
                         hint="for a whole day leave the time range out")
    return start, end


def _parse_rate(text: str, rule: str) -> float:
    try:
        return parse_rate(text)
    except UsageError as exc:
        raise UsageError(f"bandwidth timetable: rule {rule!r}: {exc.message}", hint=exc.hint) from None


class Timetable:
    """A week of rates built from rules; ``rate_at`` and ``next_change`` answer in O(1)/O(week)."""

    def __init__(self, rules: list[Rule], default: float = math.inf, text: str = "") -> None:
        self.rules = rules
        self.default = default
        self.text = text
        self._week: list[float] = [default] * MINUTES_PER_WEEK
        self.overlaps: list[tuple[str, str]] = []
        owner: dict[int, Rule] = {}
        for rule in rules:
            hidden_by = {owner[m].text for m in rule.minutes if m in owner}
            fresh = [m for m in rule.minutes if m not in owner]
            if not fresh:
                raise UsageError(
                    f"bandwidth timetable: rule {rule.text!r} never applies: earlier rules "
                    f"{', '.join(repr(t) for t in sorted(hidden_by))} cover all of its time",
                    hint="the first rule that covers a minute wins; remove the rule or narrow the earlier ones")
            self.overlaps.extend((t, rule.text) for t in sorted(hidden_by))
            for minute in fresh:
                owner[minute] = rule
                self._week[minute] = rule.rate

    @classmethod
    def parse(cls, text: str) -> Timetable:
        """Parse a timetable; a single rate (``50MiB/s``) is a timetable with one rate all week."""
        rules: list[Rule] = []
        default = math.inf
        seen_else = False
        parts = [p.strip() for p in text.split(";") if p.strip()]
        if not parts:
            raise UsageError("bandwidth timetable is empty", hint=HINT)
        for part in parts:
            words = part.split()
            if words[0].lower() == "else":
                if len(words) != 2 or seen_else:
                    raise UsageError(f"bandwidth timetable: {part!r} must be 'else RATE', once", hint=HINT)
                default, seen_else = _parse_rate(words[1], part), True
                continue
            rate = _parse_rate(words[-1], part)
            days, span = list(range(7)), None
            rest = words[:-1]
            if len(rest) > 2:
                raise UsageError(f"bandwidth timetable: rule {part!r} has too many words", hint=HINT)
            for w in rest:
                if _TIME.match(w) or ":" in w:
                    if span is not None:
                        raise UsageError(f"bandwidth timetable: rule {part!r} has two time ranges", hint=HINT)
                    span = _span(w, part)
                else:
                    days = _days(w, part)
            minutes: set[int] = set()
            start, end = span if span else (0, 1440)
            for d in days:
                base = d * 1440
                if end > start:
                    minutes.update(range(base + start, base + end))
                else:  # crosses midnight into the next day
                    minutes.update(range(base + start, base + 1440))
                    nxt = ((d + 1) % 7) * 1440
                    minutes.update(range(nxt, nxt + end))
            rules.append(Rule(part, frozenset(minutes), rate))
        return cls(rules, default, text)

    @staticmethod
    def _minute(when: datetime) -> int:
        return when.weekday() * 1440 + when.hour * 60 + when.minute

    def rate_at(self, when: datetime) -> float:
        """The rate (bytes/s; ``inf`` unlimited, ``0`` paused) at wall-clock time ``when``."""
        return self._week[self._minute(when)]

    def next_change(self, when: datetime) -> datetime | None:
        """The first moment after ``when`` at which the rate differs; None if it never does."""
        m0 = self._minute(when)
        current = self._week[m0]
        start = when.replace(second=0, microsecond=0)
        for step in range(1, MINUTES_PER_WEEK + 1):
            if self._week[(m0 + step) % MINUTES_PER_WEEK] != current:
                return start + timedelta(minutes=step)
        return None

    def describe(self) -> list[dict]:
        """The rules as JSON-ready dicts (text and rate), plus the default."""
        out = [{"rule": r.text, "rate": _fmt(r.rate)} for r in self.rules]
        out.append({"rule": "else", "rate": _fmt(self.default)})
        return out


def _fmt(rate: float) -> str:
    if math.isinf(rate):
        return "unlimited"
    if rate == 0:
        return "off"
    return format_rate(rate)
