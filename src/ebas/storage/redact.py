"""The one place that hides credentials in store URLs before anything prints them.

Store URLs can carry secrets: ``sftp://user:PASSWORD@host/path``, query options such as
``secret_access_key=``, ``account_key=``, ``sas_token=``, ``connection_string=``,
``password=``, an ``endpoint=`` that itself has ``user:pw@``. The documented way to pass
credentials is the environment or a file (docs/backends.md); for URLs that carry them
anyway, every place that prints a URL uses :func:`redact_url`, and the CLI passes every
error it prints through :func:`scrub`, so a secret never reaches stdout, stderr, JSON or
logs.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from typing import Iterable, Iterator
from urllib.parse import unquote

MASK = "***"
# option names that look secret: anything with secret, password, token, key (but not key_file), signature...
_SECRET_NAME = re.compile(r"(?i)(secret|passw|pwd|passphrase|token|credential|connection_?string|signature|"
                          r"(^|_)sig($|_)|(^|_)key($|_)|account_?key|access_?key|api_?key|private|auth)")
_NOT_SECRET = frozenset({"key_file", "known_hosts", "lock_days", "accept_new"})
_USERINFO = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^/?#@:]*):(?P<pw>[^/?#@]*)@")
_MIN_SECRET = 3  # shorter values are not scrubbed from free text (they would mangle it)


def is_secret_option(name: str) -> bool:
    """True if a URL query option called ``name`` probably holds a credential."""
    low = name.lower()
    return low not in _NOT_SECRET and bool(_SECRET_NAME.search(low))


def redact_url(url: str) -> str:
    """``url`` with the password of ``user:password@`` and the values of secret-looking
    query options replaced by ``***`` (nested URLs in option values too). Works on
    malformed URLs (string level, no port parsing); a plain path comes back unchanged."""
    if not isinstance(url, str) or "://" not in url and "?" not in url:
        return url
    url = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", url, count=1)
    base, sep, query = url.partition("?")
    if not sep:
        return url
    frag = ""
    if "#" in query:
        query, _, frag = query.partition("#")
        frag = "#" + frag
    parts = []
    for item in query.split("&"):
        name, eq, value = item.partition("=")
        if eq and is_secret_option(unquote(name)):
            value = MASK
        elif eq and "://" in unquote(value):
            value = redact_url(unquote(value))
        parts.append(f"{name}{eq}{value}")
    return f"{base}?{'&'.join(parts)}{frag}"


def url_secrets(url: str) -> list[str]:
    """The credential values inside ``url`` (as written and percent-decoded), longest first."""
    if not isinstance(url, str):
        return []
    found: set[str] = set()
    m = _USERINFO.match(url)
    if m and m["pw"]:
        found |= {m["pw"], unquote(m["pw"])}
    _, sep, query = url.partition("?")
    if sep:
        for item in query.split("#")[0].split("&"):
            name, eq, value = item.partition("=")
            if not eq:
                continue
            if is_secret_option(unquote(name)):
                found |= {value, unquote(value), unquote(value.replace("+", " "))}
                for part in re.split(r"[&;]", unquote(value)):  # a SAS token or connection string inside
                    sub, eq2, inner = part.partition("=")
                    if eq2 and is_secret_option(sub.strip()):
                        found.add(inner)
            elif "://" in unquote(value):
                found |= set(url_secrets(unquote(value)))
    return sorted((s for s in found if len(s) >= _MIN_SECRET), key=len, reverse=True)


def scrub(text: str, urls: Iterable[str]) -> str:
    """``text`` with every credential found in ``urls`` replaced by ``***`` and every
    occurrence of those URLs redacted."""
    for url in urls:
        if not url:
            continue
        text = text.replace(url, redact_url(url))
        for secret in url_secrets(url):
            text = text.replace(secret, MASK)
    return text


@contextmanager
def redacting(*urls: str) -> Iterator[None]:
    """Re-raise any exception from the block with the secrets of ``urls`` scrubbed from its
    message (and hint), so that a backend error quoting its URL cannot leak them."""
    try:
        yield
    except Exception as exc:
        scrub_exception(exc, urls)
        raise


def scrub_exception(exc: BaseException, urls: Iterable[str]) -> BaseException:
    """Scrub the secrets of ``urls`` from ``exc`` in place (message, hint, args); returns it."""
    urls = [u for u in urls if u]
    if not urls:
        return exc
    for attr in ("message", "hint"):
        value = getattr(exc, attr, None)
        if isinstance(value, str):
            try:
                setattr(exc, attr, scrub(value, urls))
            except AttributeError:  # pragma: no cover - read-only attribute
                pass
    exc.args = tuple(scrub(a, urls) if isinstance(a, str) else a for a in exc.args)
    return exc
