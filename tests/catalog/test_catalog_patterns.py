"""Pure parts of the catalog: pattern modes, glob translation, the regex guard, value parsing."""

from __future__ import annotations

import fnmatch
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ebas.catalog.db.postgres import redact, split_schema
from ebas.catalog.errors import QueryRejected
from ebas.catalog.patterns import (
    check_regex,
    glob_literals,
    glob_to_like,
    glob_to_regex,
    glob_to_sqlite,
    name_match,
    trigrams,
)
from ebas.catalog.schema import Entry, entry_from_node, norm_path, text_name
from ebas.catalog.specs import parse_mode_filter, parse_size_filter
from ebas.errors import UsageError
from ebas.repo.tree import Node


def test_pattern_modes():
    assert name_match("report").mode == "substring"
    assert name_match("*.log").mode == "glob"
    assert name_match("a?c").mode == "glob"
    assert name_match("[ab]x").mode == "glob"
    assert name_match("x.log", "exact").mode == "exact"
    assert name_match("^x$", "regex").mode == "regex"
    with pytest.raises(QueryRejected):
        name_match("x", "fuzzy")


def test_glob_translations():
    assert glob_literals("app*.log.?") == ["app", ".log."]
    assert glob_literals("[abc]def*") == ["def"]
    assert glob_to_sqlite("[!a-c]*") == "[^a-c]*"
    assert glob_to_like("100%_*?") == "100\\%\\_%_"
    assert glob_to_regex("a.b*[!x]") == r"^a\.b.*[^x]$"
    assert glob_to_regex("[") == r"^\[$"
    assert trigrams(["report"]) == ["rep", "epo", "por", "ort"]
    assert len(trigrams(["abcdefghijklmnopqrstuvwxyz"], limit=5)) == 5
    assert trigrams(["ab"]) == []


NAME = st.text(st.sampled_from(list("ab.%_[]!*?-\\x")), max_size=8)
GLOB = st.lists(st.sampled_from(list("ab.%_*?x") + ["[ab]", "[!a]", "[a-c]"]), max_size=6).map("".join)


@settings(max_examples=300, deadline=None)
@given(GLOB, NAME)
def test_glob_regex_agrees_with_fnmatch(glob, name):
    assert (re.search(glob_to_regex(glob), name, re.S) is not None) == fnmatch.fnmatchcase(name, glob)


@pytest.mark.parametrize("regex", [r"^app\.log(\.\d+)?$", r"\.(md|txt)$", r"report-\d{4}", r".*a.*b.*c", r"(?i)x",
                                   r"[a-z]+\.pdf", r"(foo|bar)?baz", r"a{1,64}"])
def test_safe_regexes_pass(regex):
    check_regex(regex)


@pytest.mark.parametrize("regex,why", [
    ("(a+)+b", "nested"), ("(a*)*", "nested"), ("(?:a+){2,}", "nested"), ("(a|ab)*c", "alternation"),
    ("(ab|cd)+", "alternation"), (r"(a)\1", "back-references"), ("(?P<x>a)(?P=x)", "back-references"),
    (".*.*.*.*", "unbounded"), ("a" * 257, "long"), ("(", "invalid"), ("", "empty"),
])
def test_dangerous_regexes_are_refused(regex, why):
    with pytest.raises(QueryRejected) as err:
        check_regex(regex)
    assert why in err.value.message


def test_size_filters():  # the numbers are ebas.units sizes (tests/test_units.py)
    assert parse_size_filter(">100M") == ((100 << 20) + 1, None)
    assert parse_size_filter(">=1k") == (1024, None)
    assert parse_size_filter("<4k") == (None, 4095)
    assert parse_size_filter("<=4k") == (None, 4096)
    assert parse_size_filter("+1") == (2, None)
    assert parse_size_filter("-1") == (None, 0)
    assert parse_size_filter("1k..2k") == (1024, 2048)
    assert parse_size_filter("..2k") == (None, 2048)
    assert parse_size_filter("512") == (512, 512)
    assert parse_size_filter(">10MB") == (10**7 + 1, None)  # decimal units are 1000-based
    assert parse_size_filter("1.5GiB..") == (3 << 29, None)
    for bad in ("lots", ">-5M", "5XB", "1k..2q"):
        with pytest.raises(UsageError):
            parse_size_filter(bad)


def test_modes():
    assert parse_mode_filter("world-writable") == (0o002, 0o002)
    assert parse_mode_filter("setuid,setgid") == (0o6000, 0o6000)
    assert parse_mode_filter("-4000") == (0o4000, 0o4000)
    assert parse_mode_filter("0644") == (0o7777, 0o644)
    with pytest.raises(UsageError):
        parse_mode_filter("rwx")


def test_urls_are_redacted():
    assert redact("postgresql://u:secret@h:5/db") == "postgresql://u:***@h:5/db"
    assert redact("postgresql://h/db?password=secret&sslmode=require") == \
        "postgresql://h/db?password=***&sslmode=require"
    assert redact("postgresql://u@h/db") == "postgresql://u@h/db"
    assert split_schema("postgresql://h/db?schema=abc&sslmode=disable", "d") == \
        ("postgresql://h/db?sslmode=disable", "abc")
    from ebas.catalog.errors import CatalogUnavailable

    with pytest.raises(CatalogUnavailable):
        split_schema("postgresql://h/db?schema=Bad-Name", "d")


def test_entries_and_names():
    assert text_name(b"ok.txt") == ("ok.txt", None)
    assert text_name(b"bad\xff") == ("bad\\xff", b"bad\xff")
    assert norm_path("a//b/./c/") == "/a/b/c" and norm_path("/") == "/" and norm_path("/a/../b") == "/b"
    n = Node(name=b"f", type="file", size=3, content=b"\x01" * 64, mode=0o644, target=b"")
    e = entry_from_node(n)
    assert e.type == 0 and len(e.digest) == 16 and e.subtree is None
    d = entry_from_node(Node(name=b"d", type="dir", subtree=b"\x02" * 32))
    assert d.subtree == b"\x02" * 32 and d.digest is None
    assert Entry.from_list(e.to_list()) == e
    raw = entry_from_node(Node(name=b"x\xfe", type="symlink", target=b"t\xff"))
    assert Entry.from_list(raw.to_list()) == raw and raw.target == "t\\xff"
