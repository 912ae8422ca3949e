"""Strict typed reading of decoded JSON objects from the store.

The repository key proves who wrote an object, not that it is well formed: a buggy or
hostile client holding the key can seal a snapshot with ``"time_ns": "yesterday"`` or
``"paths": null``. Every decoder reads its fields through :class:`Fields`, which checks
type and range right after decoding and turns any defect into one
:class:`~ebas.errors.MalformedObject` naming the object, so callers report and skip
exactly that object and never meet a ``TypeError`` later.

JSON ``true``/``false`` are never accepted as integers, floats never as integers, and
integers are bounded (by default to the signed 64-bit range the rest of ebas and the
operating system use).
"""

from __future__ import annotations

import json
import re
from typing import Any

from ebas.errors import MalformedObject

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
UINT64_MAX = (1 << 64) - 1
MAX_TEXT = 1 << 20  # one text field (an error message, a path): 1 MiB of characters
_HEX64 = re.compile(r"[0-9a-f]{64}")
_MISSING: Any = object()


def load_json(data: bytes, kind: str, name: str) -> Any:
    """``json.loads`` that raises ``MalformedObject`` (never ValueError/RecursionError)."""
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise MalformedObject(kind, name, f"not valid JSON ({exc})") from None


class Fields:
    """Typed, range-checked access to one decoded JSON object.

    Each getter returns the value or raises :class:`MalformedObject` (``kind`` ``name``
    "is malformed: field 'x' ..."). A ``default`` makes the field optional.
    """

    def __init__(self, doc: Any, kind: str, name: str):
        if not isinstance(doc, dict):
            raise MalformedObject(kind, name, f"expected a JSON object, found {_jtype(doc)}")
        self.doc, self.kind, self.name = doc, kind, name

    def bad(self, key: str, why: str) -> MalformedObject:
        """The error for field ``key``."""
        return MalformedObject(self.kind, self.name, f"field {key!r} {why}")

    def _get(self, key: str, default: Any) -> Any:
        if key in self.doc:
            return self.doc[key]
        if default is _MISSING:
            raise MalformedObject(self.kind, self.name, f"field {key!r} is missing")
        return default

    def only(self, allowed: set[str] | frozenset[str]) -> None:
        """Refuse fields outside ``allowed``."""
        extra = sorted(str(k) for k in self.doc if k not in allowed)
        if extra:
            raise MalformedObject(self.kind, self.name, f"unknown field(s) {', '.join(map(repr, extra[:5]))}")

    def int(self, key: str, default: Any = _MISSING, *, lo: int = INT64_MIN, hi: int = INT64_MAX) -> int:
        """An integer in ``lo..hi`` (not a bool, not a float)."""
        v = self._get(key, default)
        if type(v) is not int:
            raise self.bad(key, f"must be an integer, found {_jtype(v)}")
        if not lo <= v <= hi:
            raise self.bad(key, f"is out of range ({v} not in {lo}..{hi})")
        return v

    def number(self, key: str, default: Any = _MISSING) -> float | int:
        """A finite int or float (not a bool)."""
        v = self._get(key, default)
        if not is_number(v):
            raise self.bad(key, f"must be a number, found {_jtype(v)}")
        return v

    def bool(self, key: str, default: Any = _MISSING) -> bool:
        """``true`` or ``false``."""
        v = self._get(key, default)
        if type(v) is not bool:
            raise self.bad(key, f"must be true or false, found {_jtype(v)}")
        return v

    def str(self, key: str, default: Any = _MISSING, *, max_len: int = MAX_TEXT,
            choices: tuple[str, ...] | None = None) -> str:
        """A string (of at most ``max_len`` characters; one of ``choices`` if given)."""
        v = self._get(key, default)
        if type(v) is not str:
            raise self.bad(key, f"must be a string, found {_jtype(v)}")
        if len(v) > max_len:
            raise self.bad(key, f"is longer than {max_len} characters")
        if choices is not None and v not in choices:
            raise self.bad(key, f"has unknown value {v[:40]!r} (known: {', '.join(choices)})")
        return v

    def opt_str(self, key: str, default: Any = None, *, max_len: int = MAX_TEXT) -> str | None:
        """A string or null."""
        if self._get(key, default) is None:
            return None
        return self.str(key, max_len=max_len)

    def hex_id(self, key: str, default: Any = _MISSING, *, empty_ok: bool = False) -> str:
        """A 64-character lower-case hex id (or ``""`` if ``empty_ok``)."""
        v = self.str(key, default, max_len=64)
        if v == "" and empty_ok:
            return v
        if not _HEX64.fullmatch(v):
            raise self.bad(key, "is not a 64-character hex id")
        return v

    def opt_hex_id(self, key: str, default: Any = None) -> str | None:
        """A hex id or null."""
        if self._get(key, default) is None:
            return None
        return self.hex_id(key)

    def str_list(self, key: str, default: Any = _MISSING, *, max_len: int = MAX_TEXT, hex_ids: bool = False) -> list[str]:
        """A list of strings (each a hex id if ``hex_ids``)."""
        v = self._get(key, default)
        if type(v) is not list:
            raise self.bad(key, f"must be a list, found {_jtype(v)}")
        for item in v:
            if type(item) is not str or len(item) > max_len:
                raise self.bad(key, f"must hold strings only, found {_jtype(item)}")
            if hex_ids and not _HEX64.fullmatch(item):
                raise self.bad(key, "must hold 64-character hex ids only")
        return list(v)

    def opt_str_list(self, key: str, default: Any = None, **kw) -> list[str] | None:
        """A list of strings or null."""
        if self._get(key, default) is None:
            return None
        return self.str_list(key, **kw)

    def obj(self, key: str, default: Any = _MISSING) -> dict:
        """A JSON object (its values are the caller's to check)."""
        v = self._get(key, default)
        if type(v) is not dict:
            raise self.bad(key, f"must be an object, found {_jtype(v)}")
        return v

    def list(self, key: str, default: Any = _MISSING) -> list:
        """A JSON list (its items are the caller's to check)."""
        v = self._get(key, default)
        if type(v) is not list:
            raise self.bad(key, f"must be a list, found {_jtype(v)}")
        return v

    def sub(self, key: str, default: Any = _MISSING) -> "Fields":
        """The nested object ``key``, as Fields of the same object."""
        return Fields(self.obj(key, default), self.kind, self.name)


def is_number(v: Any) -> bool:
    """True for a finite int or float that is not a bool (and fits 64 bits if an int)."""
    if type(v) is int:
        return INT64_MIN <= v <= UINT64_MAX
    return type(v) is float and v == v and v not in (float("inf"), float("-inf"))


def _jtype(v: Any) -> str:
    if v is None:
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "an object"}.get(type(v), type(v).__name__)
