"""Bandwidth timetables: rates by day and time, windows across midnight, overlaps refused."""

from __future__ import annotations

import math
from datetime import datetime

import pytest

from ebas.errors import UsageError
from ebas.flow.timetable import Timetable

MIB = 1024 * 1024
# 2026-12-07 is a Monday
MON = datetime(2026, 12, 7)


def at(day: int, hh: int, mm: int = 0) -> datetime:
    return MON.replace(day=7 + day, hour=hh, minute=mm)


def test_issue_example_first_rule_wins():
    tt = Timetable.parse("Mon-Fri 08:00-18:00 10MiB/s; Sat-Sun off; * 18:00-08:00 unlimited")
    assert tt.rate_at(at(0, 9)) == 10 * MIB
    assert tt.rate_at(at(4, 17, 59)) == 10 * MIB
    assert tt.rate_at(at(0, 18)) == math.inf
    assert tt.rate_at(at(1, 7, 59)) == math.inf
    assert tt.rate_at(at(4, 23)) == math.inf          # Friday night
    assert tt.rate_at(at(5, 3)) == 0                   # Saturday is off, first rule wins
    assert tt.rate_at(at(6, 20)) == 0
    assert tt.rate_at(at(7, 7)) == math.inf           # Monday 07:00 (after Sunday)
    assert ("Sat-Sun off", "* 18:00-08:00 unlimited") in tt.overlaps


def test_shadowed_rule_is_refused_naming_it():
    with pytest.raises(UsageError) as exc:
        Timetable.parse("Mon-Fri 08:00-18:00 10MiB/s; Wed 12:00-13:00 1MiB/s")
    assert "'Wed 12:00-13:00 1MiB/s' never applies" in exc.value.message
    assert "'Mon-Fri 08:00-18:00 10MiB/s'" in exc.value.message


def test_midnight_crossing_and_else():
    tt = Timetable.parse("Fri 22:00-06:00 100Mbit/s; else 1MiB/s")
    assert tt.rate_at(at(4, 22, 30)) == 100e6 / 8
    assert tt.rate_at(at(5, 5, 59)) == 100e6 / 8
    assert tt.rate_at(at(5, 6)) == MIB
    assert tt.rate_at(at(3, 23)) == MIB


def test_next_change():
    tt = Timetable.parse("Mon-Fri 08:00-18:00 10MiB/s; else unlimited")
    assert tt.next_change(at(0, 7, 30)) == at(0, 8)
    assert tt.next_change(at(0, 8, 0)) == at(0, 18)
    assert tt.next_change(at(4, 18, 5)) == datetime(2026, 12, 14, 8)
    assert Timetable.parse("5MiB/s").next_change(at(0, 0)) is None


@pytest.mark.parametrize("text,words", [
    ("* 1MiB/s; Sat off", ["never applies"]),
    ("Mon-Fri 25:00-26:00 1MiB/s", ["not a valid time"]),
    ("Mon-Fry 08:00-18:00 1MiB/s", ["not a day"]),
    ("Mon 08:00-08:00 1MiB/s", ["empty"]),
    ("Mon 08:00-18:00 10 parsecs", ["cannot read the rate"]),
    ("Mon 08:00-18:00 extra 1MiB/s", ["too many words"]),
    ("Mon 08:00-18:00 fast", ["rule 'Mon 08:00-18:00 fast'"]),
    ("", ["empty"]),
    ("else 1MiB/s; else 2MiB/s", ["once"]),
])
def test_bad_timetables_name_the_rule(text, words):
    with pytest.raises(UsageError) as exc:
        Timetable.parse(text)
    for w in words:
        assert w in exc.value.message


def test_describe():
    tt = Timetable.parse("Sat,Sun off; else 50MiB/s")
    assert tt.describe() == [{"rule": "Sat,Sun off", "rate": "off"}, {"rule": "else", "rate": tt.describe()[1]["rate"]}]
    assert tt.rate_at(at(6, 12)) == 0 and tt.rate_at(at(2, 12)) == 50 * MIB
