"""A catalog export file is input from another site: every record is type-checked.

Random JSON values in any field of any record end in a named error (a malformed record
is a ``MalformedObject``, exit 13; an unreadable file a ``UsageError``) or in a correct
import: never a ``TypeError`` or a database overflow.
"""

from __future__ import annotations

import io
import itertools
import json
import tempfile

import pytest
import zstandard
from catalog_helpers import RepoBuilder, open_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ebas.catalog import CatalogError
from ebas.errors import MalformedObject, UsageError

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False) | st.text(max_size=12) | st.just("ab" * 32),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=10,
)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(builder, the records of a real export file)."""
    b = RepoBuilder(str(tmp_path_factory.mktemp("ex") / "data"))
    b.write("src/a.txt", "a")
    b.write("src/d/b.txt", "b")
    b.backup(["src"], 0)
    cat = open_for(b, str(tmp_path_factory.mktemp("cat") / "c.sqlite"), site="a")
    cat.sync(b.repo)
    buf = io.BytesIO()
    cat.export(buf)
    cat.close()
    text = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(buf.getvalue())).read().decode()
    yield b, [json.loads(line) for line in text.splitlines() if line.strip()]
    b.close()


def _pack(records) -> bytes:
    lines = "".join(json.dumps(r) + "\n" for r in records).encode()
    return zstandard.ZstdCompressor().compress(lines)


_n = itertools.count()


def _mutate(records: list, index: int, path: list, value):
    out = json.loads(json.dumps(records))
    target = out[index % len(out)]
    for key in path[:-1]:
        if isinstance(target, dict) and key in target:
            target = target[key]
        elif isinstance(target, list) and target:
            target = target[hash(key) % len(target)]
    if isinstance(target, dict):
        target[path[-1] if path[-1] in target or not target else sorted(target)[hash(path[-1]) % len(target)]] = value
    elif isinstance(target, list) and target:
        target[hash(path[-1]) % len(target)] = value
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(index=st.integers(min_value=1, max_value=20), path=st.lists(st.sampled_from(
    ["t", "id", "e", "snapshot", "snap_id", "time_ns", "paths", "tree", "tags", "level", "sites", "site",
     "host", "username", "x"]), min_size=1, max_size=3), value=values)
def test_random_values_in_export_records_are_named_errors(exported, tmp_path, index, path, value):
    builder, records = exported
    data = _pack(_mutate(records, index, path, value))
    with tempfile.TemporaryDirectory(dir=tmp_path) as d:
        cat = open_for(builder, f"{d}/c{next(_n)}.sqlite", site="b")
        try:
            cat.import_(io.BytesIO(data))
        except MalformedObject as exc:
            assert exc.exit_code == 13 and "line" in exc.message
        except (UsageError, CatalogError):
            pass
        finally:
            cat.close()


@pytest.mark.parametrize("kind, change", [
    ("tree", {"e": [["a.txt", "file", 1, 2, 3, 4, 5, 6, "u", "g", None, None, None, None]]}),
    ("tree", {"e": [["a.txt", 0, 2**70, 2, 3, 4, 5, 6, "u", "g", None, None, None, None]]}),
    ("tree", {"id": 7}),
    ("snapshot", {"snapshot": {"snap_id": "x", "time_ns": "now", "host": "h", "paths": [], "tree": "ab" * 32}}),
    ("snapshot", {"sites": "a"}),
    ("tombstone", {"time_ns": 1.5}),
])
def test_named_defects_in_export_records(exported, tmp_path, kind, change):
    builder, records = exported
    recs = json.loads(json.dumps(records))
    if kind == "tombstone":
        recs.insert(-1, {"t": "tombstone", "snap_id": "x", "site": "a", "time_ns": 1})
    rec = next(r for r in recs if r.get("t") == kind)
    rec.update(change)
    cat = open_for(builder, str(tmp_path / "c.sqlite"), site="b")
    try:
        with pytest.raises(MalformedObject, match="catalog export record line"):
            cat.import_(io.BytesIO(_pack(recs)))
    finally:
        cat.close()
