"""Blob ids (keyed BLAKE3) and pack ids (unkeyed BLAKE3)."""

from __future__ import annotations

import os

import blake3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ebas.crypto import ids
from ebas.crypto.ids import IdHasher, pack_hasher, pack_id
from ebas.errors import UsageError

# Official BLAKE3 test vectors (test_vectors.json): input i % 251, this key.
VECTOR_KEY = b"whats the Elvish word for friend"


def test_known_answers():
    assert pack_id(b"").hex() == "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
    hasher = IdHasher(VECTOR_KEY)
    assert hasher.blob_id(b"").hex() == "92b2b75604ed3c761f9d6f62392c8a9227ad0ea3f09573e783f1498a4ed60d26"
    assert hasher.blob_id(b"\x00").hex() == "6d7878dfff2f485635d39013278ae14f1454b8c0a3a2d34bc1ab38228a80c95b"


def test_blob_id_is_keyed_and_deterministic():
    a, b = IdHasher(bytes(32)), IdHasher(b"\x01" * 32)
    assert len(a.blob_id(b"chunk")) == ids.ID_LEN == 32
    assert a.blob_id(b"chunk") == a.blob_id(bytearray(b"chunk")) == a.blob_id(memoryview(b"chunk"))
    assert a.blob_id(b"chunk") != b.blob_id(b"chunk")
    assert a.blob_id(b"chunk") != pack_id(b"chunk")


def test_large_inputs_use_threads_with_same_result():
    data = os.urandom(ids.THREADS_THRESHOLD * 3 + 17)
    key = bytes(range(32))
    assert IdHasher(key).blob_id(data) == blake3.blake3(data, key=key).digest()
    assert pack_id(memoryview(data)) == blake3.blake3(data).digest()
    assert ids._threads(data) == blake3.blake3.AUTO and ids._threads(b"x") == 1


def test_pack_hasher_streams():
    data = os.urandom(300_000)
    h = pack_hasher()
    for i in range(0, len(data), 4096):
        h.update(memoryview(data)[i : i + 4096])
    assert h.digest() == pack_id(data)
    assert pack_hasher() is not pack_hasher()


def test_methods_on_id_hasher():
    hasher = IdHasher(bytes(32))
    assert hasher.pack_id(b"x") == pack_id(b"x")
    assert hasher.pack_hasher().digest() == pack_id(b"")


def test_bad_id_key():
    for key in (b"", bytes(31), bytes(33)):
        with pytest.raises(UsageError):
            IdHasher(key)


def test_repr_hides_key():
    assert bytes(range(32)).hex() not in repr(IdHasher(bytes(range(32))))


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=4096), st.lists(st.integers(0, 4096), max_size=5))
def test_property_incremental_equals_one_shot(data, cuts):
    h = pack_hasher()
    start = 0
    for cut in sorted(c for c in cuts if c <= len(data)) + [len(data)]:
        h.update(data[start:cut])
        start = cut
    assert h.digest() == pack_id(data)
