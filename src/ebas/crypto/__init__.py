"""Cryptography for ebas: password KDF, AES-256-GCM sealing and BLAKE3 ids.

Layer 0: depends only on :mod:`ebas.errors` and :mod:`ebas.runtime`.
"""

from ebas.crypto.aead import NONCE_LEN, OVERHEAD, TAG_LEN, Aead
from ebas.crypto.ids import ID_LEN, IdHasher, pack_hasher, pack_id
from ebas.crypto.kdf import ARGON2ID, SCRYPT, KdfParams, derive_key

__all__ = [
    "ARGON2ID",
    "ID_LEN",
    "NONCE_LEN",
    "OVERHEAD",
    "SCRYPT",
    "TAG_LEN",
    "Aead",
    "IdHasher",
    "KdfParams",
    "derive_key",
    "pack_hasher",
    "pack_id",
]
