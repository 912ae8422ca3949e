"""Pick a store backend by URL scheme.

``BACKENDS`` maps a scheme to ``"module:Class"``; the module is imported only when its
scheme is used, so optional SDKs (boto3, azure-storage-blob, ...) are needed only by
those who use them. Every backend class provides ``from_url(url, **options)``.
"""

from __future__ import annotations

import importlib
import os
from urllib.parse import urlsplit

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
    """
    if not isinstance(url, (str, os.PathLike)) or not os.fspath(url):
        raise UsageError(f"empty or invalid store URL {redact_url(url)!r}")
    url = os.fspath(url)
    with redacting(url):  # an error quoting the URL must not print its credentials
        return backend_class(scheme_of(url)).from_url(url, **options)
