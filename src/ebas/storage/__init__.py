"""Layer 0: stores of named immutable objects, their backends and wrappers."""

from ebas.storage.base import (
    Capabilities,
    ObjectInfo,
    ObjectWriter,
    PartInfo,
    PendingUpload,
    Store,
    check_name,
)
from ebas.storage.registry import open_store
from ebas.storage.stack import build_stack

__all__ = [
    "Capabilities",
    "ObjectInfo",
    "ObjectWriter",
    "PartInfo",
    "PendingUpload",
    "Store",
    "build_stack",
    "check_name",
    "open_store",
]
