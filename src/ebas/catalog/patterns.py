"""Name patterns: which mode a pattern selects, glob translation, and the regex guard.

A pattern without ``*``, ``?`` or ``[`` matches names that contain it; one with them is
a glob over the whole name; ``exact`` and ``regex`` are chosen explicitly. Patterns are
always passed to the database as parameters, never spliced into SQL.

Regular expressions are run by Python's ``re`` (SQLite) or by PostgreSQL. Backtracking
engines can take exponential time on patterns such as ``(a+)+b``, so before any regex
runs :func:`check_regex` refuses patterns that are too long, use back-references, nest
repetitions, repeat an alternation, or use more than three unbounded repetitions. Names
are at most 255 bytes on the file systems ebas backs up, so what remains is bounded;
a query deadline covers the rest.
"""

from __future__ import annotations

import re
import string

from ebas.catalog.db.base import NameMatch
from ebas.catalog.errors import QueryRejected

try:  # Python 3.11+
    from re import _constants as sre_constants
    from re import _parser as sre_parse
except ImportError:  # pragma: no cover - Python 3.10
    import sre_constants  # type: ignore[no-redef]
    import sre_parse  # type: ignore[no-redef]

MAX_PATTERN = 1024  # characters in a glob, substring or exact pattern
MAX_REGEX = 256  # characters in a regular expression
MAX_UNBOUNDED = 3  # unbounded repetitions in one regular expression
MODES = ("auto", "substring", "glob", "exact", "regex")
_SPECIAL = set(string.punctuation) | {" "}


def name_match(pattern: str, mode: str = "auto", ignore_case: bool = False) -> NameMatch:
    """Classify and validate ``pattern``; raises :class:`QueryRejected` if it is unusable."""
    if mode not in MODES:
        raise QueryRejected(f"unknown match mode {mode!r}", hint="use substring, glob, exact or regex")
    if "\x00" in pattern:
        raise QueryRejected("a pattern cannot contain a NUL character")
    if mode == "auto":
        mode = "glob" if any(c in pattern for c in "*?[") else "substring"
    if mode == "regex":
        check_regex(pattern)
        return NameMatch("regex", pattern, ignore_case, ())
    if len(pattern) > MAX_PATTERN:
        raise QueryRejected(f"pattern is {len(pattern)} characters long; the limit is {MAX_PATTERN}")
    if not pattern:
        raise QueryRejected("empty pattern", hint="give a name, a part of a name or a glob")
    if mode == "glob":
        return NameMatch("glob", pattern, ignore_case, tuple(glob_literals(pattern)))
    return NameMatch(mode, pattern, ignore_case, (pattern,))


# ------------------------------------------------------------------ globs
def _glob_tokens(pattern: str) -> list[tuple[str, str]]:
    """``[(kind, text)]`` with kind ``lit``, ``star``, ``any`` or ``class`` (text = members)."""
    out: list[tuple[str, str]] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            if not out or out[-1][0] != "star":
                out.append(("star", ""))
            i += 1
        elif c == "?":
            out.append(("any", ""))
            i += 1
        elif c == "[":
            j = i + 1
            if j < n and pattern[j] in "!^":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 1
            if j >= n:  # no closing bracket: a literal '['
                out.append(("lit", c))
                i += 1
            else:
                out.append(("class", pattern[i + 1 : j]))
                i = j + 1
        else:
            out.append(("lit", c))
            i += 1
    return out


def glob_literals(pattern: str) -> list[str]:
    """Runs of literal characters a name matching the glob must contain."""
    runs, cur = [], ""
    for kind, text in _glob_tokens(pattern):
        if kind == "lit":
            cur += text
        else:
            if cur:
                runs.append(cur)
            cur = ""
    if cur:
        runs.append(cur)
    return runs


def glob_has_class(pattern: str) -> bool:
    """True if the glob uses a ``[...]`` character class."""
    return any(k == "class" for k, _ in _glob_tokens(pattern))


def glob_to_sqlite(pattern: str) -> str:
    """The glob in SQLite ``GLOB`` syntax (``[!...]`` becomes ``[^...]``)."""
    out = []
    for kind, text in _glob_tokens(pattern):
        if kind == "star":
            out.append("*")
        elif kind == "any":
            out.append("?")
        elif kind == "class":
            out.append("[" + ("^" + text[1:] if text[:1] in "!^" else text) + "]")
        else:
            out.append("[" + text + "]" if text in "*?[" else text)
    return "".join(out)


def like_escape(text: str) -> str:
    """Escape ``\\``, ``%`` and ``_`` for ``LIKE ... ESCAPE '\\'``."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def glob_to_like(pattern: str) -> str:
    """A glob without classes as a LIKE pattern (escape character ``\\``)."""
    out = []
    for kind, text in _glob_tokens(pattern):
        out.append({"star": "%", "any": "_"}.get(kind) or like_escape(text))
    return "".join(out)


def _re_char(c: str) -> str:
    return "\\" + c if c in _SPECIAL else c


def glob_to_regex(pattern: str) -> str:
    """The glob as an anchored regular expression valid in Python ``re`` and PostgreSQL."""
    out = ["^"]
    for kind, text in _glob_tokens(pattern):
        if kind == "star":
            out.append(".*")
        elif kind == "any":
            out.append(".")
        elif kind == "class":
            neg = text[:1] in "!^"
            body = text[1:] if neg else text
            members = "".join(c if c.isalnum() or c == "-" else "\\" + c for c in body)
            out.append("[" + ("^" if neg else "") + members + "]")
        else:
            out.append(_re_char(text))
    out.append("$")
    return "".join(out)


def trigrams(literals: tuple[str, ...] | list[str], limit: int = 12) -> list[str]:
    """Distinct 3-character substrings of the literals (at most ``limit``, spread out)."""
    grams: list[str] = []
    for lit in literals:
        for i in range(len(lit) - 2):
            g = lit[i : i + 3]
            if g not in grams:
                grams.append(g)
    if len(grams) > limit:
        step = len(grams) / limit
        grams = [grams[int(i * step)] for i in range(limit - 1)] + [grams[-1]]
    return grams


# ------------------------------------------------------------------ regex
def check_regex(pattern: str) -> None:
    """Refuse regular expressions that are malformed or could backtrack for too long."""
    if len(pattern) > MAX_REGEX:
        raise QueryRejected(f"regular expression is {len(pattern)} characters long; the limit is {MAX_REGEX}")
    if not pattern:
        raise QueryRejected("empty regular expression")
    try:
        re.compile(pattern)
        parsed = sre_parse.parse(pattern)
    except (re.error, RecursionError, OverflowError) as exc:
        raise QueryRejected(f"invalid regular expression {pattern!r}: {exc}") from None
    unbounded = [0]
    _walk_regex(list(parsed), False, unbounded)
    if unbounded[0] > MAX_UNBOUNDED:
        raise QueryRejected(f"regular expression has {unbounded[0]} unbounded repetitions; the limit is "
                            f"{MAX_UNBOUNDED}", hint="use a glob, or fewer '*' and '+'")


_REPEATS = {sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT}
_POSSESSIVE = getattr(sre_constants, "POSSESSIVE_REPEAT", None)
if _POSSESSIVE is not None:
    _REPEATS.add(_POSSESSIVE)


def _walk_regex(items: list, inside_repeat: bool, unbounded: list[int]) -> None:
    for op, av in items:
        if op in (sre_constants.GROUPREF, sre_constants.GROUPREF_EXISTS):
            raise QueryRejected("back-references are not allowed in catalog regular expressions")
        if op in _REPEATS:
            lo, hi, body = av
            many = hi > 1
            if hi == sre_constants.MAXREPEAT or hi > 64:
                unbounded[0] += 1
            if many and inside_repeat:
                raise QueryRejected("nested repetition (like '(a+)+') can take exponential time; refused")
            if many and _has_branch(list(body)):
                raise QueryRejected("a repeated alternation (like '(a|ab)*') can take exponential time; refused")
            _walk_regex(list(body), inside_repeat or many, unbounded)
        elif op == sre_constants.SUBPATTERN:
            _walk_regex(list(av[-1]), inside_repeat, unbounded)
        elif op == sre_constants.BRANCH:
            for branch in av[1]:
                _walk_regex(list(branch), inside_repeat, unbounded)
        elif op in (sre_constants.ASSERT, sre_constants.ASSERT_NOT):
            _walk_regex(list(av[1]), inside_repeat, unbounded)
        elif op == getattr(sre_constants, "ATOMIC_GROUP", None):
            _walk_regex(list(av), inside_repeat, unbounded)


def _has_branch(items: list) -> bool:
    for op, av in items:
        if op == sre_constants.BRANCH:
            return True
        if op == sre_constants.SUBPATTERN and _has_branch(list(av[-1])):
            return True
        if op in _REPEATS and _has_branch(list(av[2])):
            return True
    return False
