"""Store URL options read sizes and durations with the one grammar of ebas.units."""

from __future__ import annotations

import pytest

from ebas.errors import UsageError
from ebas.storage.backends._cloud import Options, as_seconds, as_size
from ebas.storage.backends.tape import TapeStore

SPEC = {"block_size": (as_size, 8 << 20), "read_timeout": (as_seconds, 60.0)}


def test_sizes_and_durations_in_url_options():
    opts = Options("test", SPEC, {"block_size": "4MB", "read_timeout": "2min"}, {})
    assert opts["block_size"] == 4_000_000 and opts["read_timeout"] == 120.0  # MB is 1000-based
    opts = Options("test", SPEC, {"block_size": "4M", "read_timeout": "2.5"}, {})
    assert opts["block_size"] == 4 << 20 and opts["read_timeout"] == 2.5  # a bare number stays seconds
    assert Options("test", SPEC, {}, {"block_size": 1 << 20})["block_size"] == 1 << 20


@pytest.mark.parametrize("query,words", [
    ({"block_size": "-4MiB"}, "negative"), ({"block_size": "4XB"}, "unknown size unit"),
    ({"read_timeout": "5m"}, "5min"), ({"read_timeout": "-5"}, "negative"), ({"read_timeout": "5 fortnights"}, "unit"),
])
def test_bad_url_options_are_refused(query, words):
    with pytest.raises(UsageError) as info:
        Options("test", SPEC, query, {})
    assert words in info.value.message


def test_tape_capacity_reads_the_size_grammar(tmp_path):
    tape = TapeStore.from_url(f"tape://{tmp_path}/vtl?volumes=1&capacity=1.5MiB&fsync=0&load_timeout=10min")
    assert tape.capabilities.extra["capacity"] == 3 << 19
    with pytest.raises(UsageError, match="negative"):
        TapeStore.from_url(f"tape://{tmp_path}/other?volumes=1&capacity=-1MiB&fsync=0")
