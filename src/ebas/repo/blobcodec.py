"""Blob codec: plaintext <-> stored bytes.

Stored form: ``nonce(12) || AES-256-GCM(codec_byte || payload, aad=blob_id)``. The codec
byte is 0 for raw and 1 for zstd. Compression is skipped when a sample of the data does
not compress (photos, archives, encrypted files) and when the result would not be
smaller. Binding the blob id as associated data means a blob copied to another place
in a pack or another pack is still tied to its id.
"""

from __future__ import annotations

import threading

import zstandard

from ebas.errors import IntegrityError

CODEC_RAW = 0
CODEC_ZSTD = 1

SAMPLE = 64 * 1024
_RAW, _ZSTD = bytes((CODEC_RAW,)), bytes((CODEC_ZSTD,))
_MAX_OUTPUT = 1 << 31


class BlobCodec:
    """Compress-then-encrypt and decrypt-then-decompress blobs; thread-safe."""

    def __init__(self, aead, ids, level: int = 3, compression: bool = True):
        self.aead = aead
        self.ids = ids
        self.level = level
        self.compression = compression
        self._local = threading.local()

    def _cctx(self) -> zstandard.ZstdCompressor:
        c = getattr(self._local, "c", None)
        if c is None:
            c = self._local.c = zstandard.ZstdCompressor(level=self.level)
        return c

    def _dctx(self) -> zstandard.ZstdDecompressor:
        d = getattr(self._local, "d", None)
        if d is None:
            d = self._local.d = zstandard.ZstdDecompressor()
        return d

    def blob_id(self, data) -> bytes:
        """The keyed id of plaintext ``data``."""
        return self.ids.blob_id(data)

    def compress(self, data) -> tuple[int, bytes]:
        """``(codec, payload)`` for ``data``: zstd when it pays, else raw."""
        n = len(data)
        if not self.compression or n < 64:
            return CODEC_RAW, bytes(data)
        cctx = self._cctx()
        if n > 2 * SAMPLE:
            mid = n // 2
            sample = cctx.compress(data[mid : mid + SAMPLE])
            if len(sample) > SAMPLE * 0.92:
                return CODEC_RAW, bytes(data)
        out = cctx.compress(data)
        if len(out) < n * 0.97:
            return CODEC_ZSTD, out
        return CODEC_RAW, bytes(data)

    def encode(self, blob_id: bytes, data) -> tuple[bytes, int]:
        """Stored bytes for a blob and the codec used."""
        codec, plain = self.plaintext(data)
        return self.aead.seal(plain, blob_id), codec

    def plaintext(self, data) -> tuple[int, bytes]:
        """``(codec, codec byte + payload)``: what :meth:`encode` encrypts, built with one
        copy of ``data`` (or of its compressed form); ``stored_length`` of it is
        ``len(plain) + OVERHEAD``. Seal it with ``aead.seal_into`` to encrypt in place."""
        n = len(data)
        if not self.compression or n < 64:
            return CODEC_RAW, _RAW + data
        cctx = self._cctx()
        if n > 2 * SAMPLE:
            mid = n // 2
            sample = cctx.compress(data[mid : mid + SAMPLE])
            if len(sample) > SAMPLE * 0.92:
                return CODEC_RAW, _RAW + data
        out = cctx.compress(data)
        if len(out) < n * 0.97:
            return CODEC_ZSTD, _ZSTD + out
        del out
        return CODEC_RAW, _RAW + data

    def decode(self, blob_id: bytes, stored, *, verify: bool = True) -> bytes:
        """Plaintext of a stored blob; raises ``IntegrityError`` if it fails any check."""
        plain = self.aead.open(stored, blob_id)
        if not plain:
            raise IntegrityError(f"blob {blob_id.hex()} is empty after decryption")
        codec = plain[0]
        if codec == CODEC_RAW:
            data = bytes(memoryview(plain)[1:])
        elif codec == CODEC_ZSTD:
            try:
                data = self._dctx().decompress(memoryview(plain)[1:], max_output_size=_MAX_OUTPUT)
            except zstandard.ZstdError as exc:
                raise IntegrityError(f"blob {blob_id.hex()} does not decompress: {exc}") from exc
        else:
            raise IntegrityError(f"blob {blob_id.hex()} has unknown codec {codec}")
        if verify and self.ids.blob_id(data) != blob_id:
            raise IntegrityError(f"blob {blob_id.hex()} content does not match its id")
        return data
