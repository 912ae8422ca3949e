"""The one grammar of ebas.units: what each spelling means, round trips, and every refusal."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ebas.errors import EXIT_USAGE, UsageError
from ebas.units import (
    format_duration,
    format_rate,
    format_size,
    parse_duration,
    parse_percent,
    parse_rate,
    parse_size,
    parse_time,
)

KiB, MiB, GiB, TiB = 1 << 10, 1 << 20, 1 << 30, 1 << 40
DAY = 86400
NOW = datetime(2026, 3, 15, 12, 0, tzinfo=timezone.utc)


def refused(fn, text, *words):
    """``fn(text)`` raises a UsageError (exit 2) whose message names every one of ``words``."""
    with pytest.raises(UsageError) as info:
        fn(text)
    assert info.value.exit_code == EXIT_USAGE and info.value.hint
    for w in words:
        assert w in info.value.message, (w, info.value.message)
    return info.value


# ------------------------------------------------------------------ sizes
@pytest.mark.parametrize("text,value", [
    ("512", 512), ("4096B", 4096), ("64KiB", 64 * KiB), ("1.5MiB", 3 * MiB // 2), ("2GiB", 2 * GiB), ("1TiB", TiB),
    ("1KB", 1000), ("10MB", 10**7), ("3GB", 3 * 10**9), ("2TB", 2 * 10**12),
    ("1k", KiB), ("100M", 100 * MiB), ("2g", 2 * GiB), ("1T", TiB),  # single letters are binary, like restic
    ("64kib", 64 * KiB), ("8 MiB", 8 * MiB), (" 1.5k ", 1536), ("0", 0), (".5K", 512), ("0.3K", 307),
])
def test_sizes(text, value):
    assert parse_size(text) == value


def test_a_negative_size_is_refused():
    refused(parse_size, "-5MiB", "negative")
    refused(parse_size, "-1", "negative")


@pytest.mark.parametrize("text", ["5XB", "10 bananas", "3Kbit", "2EiB"])
def test_an_unknown_size_unit_is_refused_naming_the_known_ones(text):
    err = refused(parse_size, text, "unknown size unit")
    assert "KiB" in err.hint and "MB" in err.hint


@pytest.mark.parametrize("text", ["", "lots", "1..2", "MiB", "1e6"])
def test_unreadable_sizes_are_refused(text):
    refused(parse_size, text)


@given(st.integers(min_value=0, max_value=1 << 62))
def test_size_round_trip(n):
    assert parse_size(format_size(n)) == n


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(["", "B", "K", "KiB", "M", "MiB", "G", "GiB", "T",
                                                                  "TiB", "KB", "MB", "GB", "TB"]),
       st.booleans(), st.booleans())
def test_any_spelling_of_a_size_means_the_same(number, unit, lower, space):
    factor = {"": 1, "b": 1, "k": KiB, "kib": KiB, "m": MiB, "mib": MiB, "g": GiB, "gib": GiB, "t": TiB,
              "tib": TiB, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}[unit.lower()]
    text = f"{number}{' ' if space else ''}{unit.lower() if lower else unit}"
    assert parse_size(text) == number * factor


def test_format_size_picks_the_largest_exact_unit():
    assert [format_size(n) for n in (0, 1, 4097, 64 * KiB, 1536 * KiB, GiB, 10**9, 400 * GiB)] == \
        ["0B", "1B", "4097B", "64KiB", "1536KiB", "1GiB", "1GB", "400GiB"]


# ------------------------------------------------------------------ durations
@pytest.mark.parametrize("text,seconds", [
    ("90s", 90), ("500ms", 0.5), ("15min", 900), ("2h", 7200), ("7d", 7 * DAY), ("2w", 14 * DAY),
    ("6mo", 180 * DAY), ("1y", 365 * DAY), ("1h30min", 5400), ("1y6mo", (365 + 180) * DAY),
    ("2w3d12h", 17 * DAY + 12 * 3600), ("1h 30min", 5400), ("1.5h", 5400), ("0", 0), ("0s", 0),
    ("3 days", 3 * DAY), ("2 weeks", 14 * DAY), ("7D", 7 * DAY), ("90 minutes", 5400),
])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text,number", [("30m", "30"), ("6m", "6"), ("1y6m", "6"), ("1m30s", "1"), ("30M", "30")])
def test_a_bare_m_is_refused_saying_what_to_write(text, number):
    refused(parse_duration, text, "ambiguous", f"{number}min", f"{number}mo", "minutes", "months")


@pytest.mark.parametrize("text,unit", [("5x", "x"), ("3 fortnights", "fortnights"), ("2hr", "hr")])
def test_an_unknown_duration_unit_is_refused_naming_the_known_ones(text, unit):
    err = refused(parse_duration, text, "unknown duration unit", repr(unit))
    assert "min" in err.hint and "mo (30 days)" in err.hint


def test_a_duration_needs_a_unit_and_a_sign_it_cannot_have():
    refused(parse_duration, "30", "no unit", "30s", "30min")
    refused(parse_duration, "-7d", "negative")
    refused(parse_duration, "", "empty")
    refused(parse_duration, "1h30", "cannot read")
    refused(parse_duration, "d", "cannot read")


UNIT_SECONDS = {"ms": Fraction(1, 1000), "s": 1, "min": 60, "h": 3600, "d": DAY, "w": 7 * DAY, "mo": 30 * DAY, "y": 365 * DAY}


@given(st.lists(st.tuples(st.integers(min_value=0, max_value=10**4), st.sampled_from(sorted(UNIT_SECONDS))),
                min_size=1, max_size=5), st.booleans())
def test_a_sum_of_terms_is_the_sum_of_their_durations(terms, spaced):
    text = (" " if spaced else "").join(f"{n}{u}" for n, u in terms)
    assert parse_duration(text) == float(sum(n * UNIT_SECONDS[u] for n, u in terms))  # exact, then rounded once


@given(st.integers(min_value=1, max_value=10**6))
def test_a_bare_m_is_refused_for_any_number(n):
    with pytest.raises(UsageError, match=f"write {n}min for minutes or {n}mo for months"):
        parse_duration(f"{n}m")


@given(st.integers(min_value=0, max_value=10**12))
def test_duration_round_trip_whole_seconds(n):
    assert parse_duration(format_duration(n)) == n


@given(st.floats(min_value=0, max_value=1e9, allow_nan=False, allow_infinity=False))
def test_duration_round_trip_any_seconds(x):
    assert parse_duration(format_duration(x)) == x


def test_format_duration_picks_the_largest_exact_unit_and_never_mo():
    assert [format_duration(s) for s in (0, 90, 5400, 36 * 3600, 14 * DAY, 30 * DAY, 180 * DAY, 365 * DAY, 0.5)] == \
        ["0s", "90s", "90min", "36h", "2w", "30d", "180d", "1y", "500ms"]
    assert format_duration(timedelta(hours=2)) == "2h"


# ------------------------------------------------------------------ rates
@pytest.mark.parametrize("text,bps", [
    ("50MiB/s", 50 * MiB), ("10MB/s", 10**7), ("100Mbit/s", 12.5 * 10**6), ("1Gbit/s", 125 * 10**6),
    ("500KiB/s", 500 * KiB), ("20M/s", 20 * MiB), ("off", 0.0), ("OFF", 0.0), ("100bit/s", 12.5),
    ("8kbit/s", 1000), ("1Mibit/s", MiB / 8), ("0.5B/s", 0.5),
])
def test_rates(text, bps):
    assert parse_rate(text) == bps


def test_unlimited_rate_is_infinite():
    assert parse_rate("unlimited") == math.inf and format_rate(math.inf) == "unlimited"


def test_bad_rates_are_refused():
    refused(parse_rate, "100Mb/s", "ambiguous", "100Mbit/s", "100MB/s")
    refused(parse_rate, "50MiB", "/s")
    refused(parse_rate, "-5MiB/s", "negative")
    refused(parse_rate, "5XB/s", "unknown size unit")


@given(st.integers(min_value=0, max_value=1 << 50))
def test_rate_round_trip_whole_bytes(n):
    assert parse_rate(format_rate(n)) == n


@given(st.floats(min_value=0, max_value=1e12, allow_nan=False, allow_infinity=False))
def test_rate_round_trip_any_value(x):
    assert parse_rate(format_rate(x)) == x


def test_format_rate_examples():
    assert [format_rate(x) for x in (0, 50 * MiB, 12.5 * 10**6 + 0.5, 12.5)] == \
        ["off", "50MiB/s", "100000004bit/s", "100bit/s"]


# ------------------------------------------------------------------ times
def test_times_relative_to_now():
    assert parse_time("now", now=NOW) == NOW
    assert parse_time("7d", now=NOW) == NOW - timedelta(days=7)
    assert parse_time("6mo", now=NOW) == NOW - timedelta(days=180)
    assert parse_time("12h ago", now=NOW) == NOW - timedelta(hours=12)
    assert parse_time("+1y", now=NOW) == NOW + timedelta(days=365)
    assert parse_time("@1700000000") == datetime(2023, 11, 14, 22, 13, 20, tzinfo=timezone.utc)


def test_iso_times_are_aware_and_naive_means_local():
    assert parse_time("2026-03-01T12:00Z") == datetime(2026, 3, 1, 12, tzinfo=timezone.utc)
    assert parse_time("2026-03-01T12:00+02:00") == datetime(2026, 3, 1, 10, tzinfo=timezone.utc)
    local = parse_time("2026-03-01")
    assert local.tzinfo is not None and local == datetime(2026, 3, 1).astimezone()
    assert parse_time("2026-03-01T12:00") == datetime(2026, 3, 1, 12).astimezone()


def test_today_and_yesterday_are_local_midnights():
    today = parse_time("today", now=NOW)
    assert today == datetime.combine(NOW.astimezone().date(), datetime.min.time()).astimezone()
    assert parse_time("yesterday", now=NOW).date() == today.date() - timedelta(days=1)


def test_bad_times_are_refused():
    refused(parse_time, "last spring", "cannot read the time")
    refused(parse_time, "30m", "ambiguous", "30min", "30mo")  # the same rule as every duration
    refused(parse_time, "2026-13-01", "cannot read the time")
    refused(parse_time, "7", "cannot read the time")
    refused(parse_time, "99999999y", "out of range")


# ------------------------------------------------------------------ percentages
def test_percentages():
    assert parse_percent("10%") == 0.10 and parse_percent("2.5%") == 0.025
    assert parse_percent("0%") == 0.0 and parse_percent("100%") == 1.0 and parse_percent("0") == 0.0


def test_bad_percentages_are_refused():
    refused(parse_percent, "0.1", "needs a '%'", "0.1%", "10%")
    refused(parse_percent, "-5%", "negative")
    refused(parse_percent, "150%", "above 100%")
    refused(parse_percent, "lots", "cannot read")
