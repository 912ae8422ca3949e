"""Pick a store backend by URL scheme.

``BACKENDS`` maps a scheme to ``"module:Class"``; the module is imported only when its
scheme is used, so optional SDKs (boto3, azure-storage-blob, ...) are needed only by
those who use them. Every backend class provides ``from_url(url, **options)``.
"""

from __future__ import annotations

import importlib
import os
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ebas.errors import UsageError
from ebas.storage.base import Store
from ebas.storage.redact import redact_url, redacting

BACKENDS: dict[str, str] = {
    "file": "ebas.storage.backends.file:FileStore",
    "memory": "ebas.storage.backends.memory:MemoryStore",
    "s3": "ebas.storage.backends.s3:S3Store",
    "azure": "ebas.storage.backends.azure:AzureStore",
    "gs": "ebas.storage.backends.gcs:GCSStore",
    "gcs": "ebas.storage.backends.gcs:GCSStore",
    "sftp": "ebas.storage.backends.sftp:SFTPStore",
    "tape": "ebas.storage.backends.tape:TapeStore",
}


def register_backend(scheme: str, target: str) -> None:
    """Make ``open_store`` open ``scheme://...`` URLs with ``target`` ("module:Class")."""
    if ":" not in target:
        raise UsageError(f"backend target must be 'module:Class', got {target!r}")
    BACKENDS[scheme.lower()] = target


def scheme_of(url: str) -> str:
    """The URL's scheme, or ``"file"`` for a plain (absolute or relative) path."""
    if "://" not in url:
        return "file"
    return urlsplit(url).scheme.lower()


def backend_class(scheme: str) -> type[Store]:
    """Import and return the backend class registered for ``scheme``."""
    try:
        target = BACKENDS[scheme]
    except KeyError:
        supported = ", ".join(f"{s}://" for s in sorted(BACKENDS))
        raise UsageError(f"unknown store scheme {scheme!r}; supported: {supported}",
                         hint="a plain path means a local directory (file://)") from None
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"the {scheme}:// backend is not available: {exc}",
                         hint=f"install the optional dependencies for {scheme}:// stores") from exc
    return getattr(module, class_name)


def open_store(url: str, **options) -> Store:
    """Open the store named by ``url``; ``options`` go to the backend's ``from_url``.

    ``file:///abs/path`` or a plain path (relative paths are made absolute) opens a
    ``FileStore``; ``memory://NAME`` a ``MemoryStore``. Unknown schemes raise
    ``UsageError`` listing the supported ones. Credentials in ``url`` never appear in
    an error message (:mod:`ebas.storage.redact`).
    ``?bwlimit=RATE|TIMETABLE`` (or the
    ``bwlimit`` keyword) is taken off before the backend sees the URL and kept on the
    store as ``store.bwlimit`` for :func:`ebas.storage.stack.build_stack`.
    """
    if not isinstance(url, (str, os.PathLike)) or not os.fspath(url):
        raise UsageError(f"empty or invalid store URL {redact_url(url)!r}")
    url = os.fspath(url)
    url, bwlimit = _pop_bwlimit(url)
    bwlimit = options.pop("bwlimit", bwlimit)
    with redacting(url):  # an error quoting the URL must not print its credentials
        store = backend_class(scheme_of(url)).from_url(url, **options)
    if bwlimit is not None:
        from ebas.storage.wrappers.throttle import Link

        Link.parse(bwlimit)  # refuse a bad limit now, naming it, not at the first write
        store.bwlimit = bwlimit  # read by build_stack, which adds the throttle wrapper
    return store


def _pop_bwlimit(url: str) -> tuple[str, str | None]:
    """``url`` without its ``bwlimit`` query option, and that option's value (None if absent).

    ``bwlimit`` is a store option every backend accepts: it is not the backend's but the
    stack's (:func:`ebas.storage.stack.build_stack` throttles the store with it)."""
    if "://" not in url or "?" not in url:
        return url, None
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    found = [v for k, v in pairs if k == "bwlimit"]
    if not found:
        return url, None
    rest = urlencode([(k, v) for k, v in pairs if k != "bwlimit"])
    return urlunsplit(parts._replace(query=rest)), found[-1]
