"""Purpose keys derived from the master key (BLAKE3 ``derive_key`` mode).

Each purpose gets its own 32-byte key, so a key that leaks from one use (a local cache
MAC key, say) tells nothing about the others or about the master key:

* ``config_mac``: authenticates the repository ``config`` object (docs/format.md, "config").
* ``dedup_cache``: authenticates the local dedup-table cache (docs/format.md, "Dedup table").
* ``chunker``: seeds the keyed chunk boundaries; derived from ``id_key`` alone, because
  copies made by export may get a fresh ``enc_key`` but keep ``id_key`` (same blob ids,
  so they must cut the same chunks).
"""

from __future__ import annotations

import blake3

_CONTEXT = "ebas 2026 repository subkey: "


def derive(material: bytes, purpose: str) -> bytes:
    """A 32-byte key for ``purpose`` from secret ``material``; same inputs, same key."""
    return blake3.blake3(material, derive_key_context=_CONTEXT + purpose).digest()


def config_mac_key(master) -> bytes:
    """The key that authenticates the repository config."""
    return derive(master.enc_key + master.id_key, "config mac")


def dedup_cache_key(master) -> bytes:
    """The key that authenticates the local dedup-table cache."""
    return derive(master.enc_key + master.id_key, "dedup cache mac")


def chunker_seed(master) -> bytes:
    """The secret seed of the keyed chunker (from ``id_key`` only, see the module docstring)."""
    return derive(master.id_key, "chunker gear")
