"""Authenticated encryption of repository data: AES-256-GCM.

Sealed format: ``nonce (12 bytes) || ciphertext || tag (16 bytes)``. Nonces are random
(from the injected :class:`~ebas.runtime.Entropy`), which is safe for about 2**32 seals
under one key (NIST SP 800-38D); callers that may exceed that should derive subkeys.
A single message is limited to 2**31 - 1 bytes by the ``cryptography`` package.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ebas.errors import IntegrityError, UsageError
from ebas.runtime import Entropy

KEY_LEN = 32
NONCE_LEN = 12
TAG_LEN = 16
OVERHEAD = NONCE_LEN + TAG_LEN

Buffer = bytes | bytearray | memoryview

_FAILED = "authentication failed: data corrupt or tampered"


class Aead:
    """AES-256-GCM under one 32-byte key; ``open(seal(x, aad), aad) == x``.

    ``open`` raises :class:`~ebas.errors.IntegrityError` for any change to nonce,
    ciphertext, tag or associated data, and for input shorter than :data:`OVERHEAD`.
    Accepts ``bytes``, ``bytearray`` and ``memoryview``.
    """

    __slots__ = ("_cipher", "_entropy")

    def __init__(self, key: bytes, entropy: Entropy):
        if len(key) != KEY_LEN:
            raise UsageError(f"AEAD key must be {KEY_LEN} bytes, got {len(key)}")
        self._cipher = AESGCM(bytes(key))
        self._entropy = entropy

    def seal(self, plaintext: Buffer, aad: Buffer = b"") -> bytes:
        """Encrypt and authenticate ``plaintext`` (and ``aad``) under a fresh random nonce.

        Returns ``len(plaintext) + OVERHEAD`` bytes.
        """
        nonce = self._entropy.token_bytes(NONCE_LEN)
        if len(nonce) != NONCE_LEN:
            raise UsageError(f"entropy returned {len(nonce)} bytes for a {NONCE_LEN}-byte nonce")
        return nonce + self._cipher.encrypt(nonce, memoryview(plaintext).cast("B"), bytes(aad))

    def seal_into(self, plaintext: Buffer, aad: Buffer, out: Buffer) -> None:
        """:meth:`seal` written into ``out`` (writable, exactly ``len(plaintext) + OVERHEAD``
        bytes) instead of a new object: the same bytes, no copy (packs are built in place)."""
        view = memoryview(out).cast("B")
        plain = memoryview(plaintext).cast("B")
        if view.nbytes != plain.nbytes + OVERHEAD:
            raise UsageError(f"seal_into needs {plain.nbytes + OVERHEAD} bytes of room, got {view.nbytes}")
        nonce = self._entropy.token_bytes(NONCE_LEN)
        if len(nonce) != NONCE_LEN:
            raise UsageError(f"entropy returned {len(nonce)} bytes for a {NONCE_LEN}-byte nonce")
        view[:NONCE_LEN] = nonce
        self._cipher.encrypt_into(nonce, plain, bytes(aad), view[NONCE_LEN:])

    def open(self, data: Buffer, aad: Buffer = b"") -> bytes:
        """Verify and decrypt what :meth:`seal` produced; ``IntegrityError`` on any failure."""
        view = memoryview(data)
        if view.nbytes < OVERHEAD:
            raise IntegrityError(f"{_FAILED} (only {view.nbytes} bytes, need at least {OVERHEAD})")
        view = view.cast("B")
        try:
            return self._cipher.decrypt(bytes(view[:NONCE_LEN]), view[NONCE_LEN:], bytes(aad))
        except (InvalidTag, ValueError, OverflowError):
            raise IntegrityError(_FAILED) from None

    def __repr__(self) -> str:
        return "<Aead aes-256-gcm>"
