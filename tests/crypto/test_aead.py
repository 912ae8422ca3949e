"""Aead: AES-256-GCM sealing, tamper detection, buffer types."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ebas.crypto.aead import NONCE_LEN, OVERHEAD, TAG_LEN, Aead
from ebas.errors import IntegrityError, UsageError
from ebas.runtime import Entropy, FakeEntropy

KEY = bytes(range(32))
AEAD = Aead(KEY, FakeEntropy(1))


def test_constants():
    assert (NONCE_LEN, TAG_LEN, OVERHEAD) == (12, 16, 28)


def test_round_trip_and_layout():
    entropy = FakeEntropy(3)
    expected_nonce = FakeEntropy(3).token_bytes(12)
    sealed = Aead(KEY, entropy).seal(b"hello", b"ad")
    assert len(sealed) == 5 + OVERHEAD
    assert sealed[:NONCE_LEN] == expected_nonce
    assert b"hello" not in sealed
    assert AEAD.open(sealed, b"ad") == b"hello"


def test_empty_plaintext_and_aad():
    sealed = AEAD.seal(b"")
    assert len(sealed) == OVERHEAD
    assert AEAD.open(sealed) == b""


def test_fresh_nonce_per_seal():
    a, b = AEAD.seal(b"same"), AEAD.seal(b"same")
    assert a != b and a[:NONCE_LEN] != b[:NONCE_LEN]


def test_accepts_memoryview_and_bytearray():
    sealed = AEAD.seal(memoryview(b"payload"), memoryview(b"aad"))
    assert AEAD.open(memoryview(sealed), bytearray(b"aad")) == b"payload"
    assert AEAD.open(bytearray(sealed), b"aad") == b"payload"
    padded = b"xx" + sealed + b"yy"
    assert AEAD.open(memoryview(padded)[2:-2], b"aad") == b"payload"


def test_non_byte_memoryview_counts_bytes():
    import array

    arr = array.array("I", [1, 2, 3])
    sealed = AEAD.seal(memoryview(arr))
    assert AEAD.open(sealed) == arr.tobytes()


def test_wrong_key_and_wrong_aad_fail():
    sealed = AEAD.seal(b"data", b"blob-id")
    with pytest.raises(IntegrityError, match="authentication failed"):
        Aead(bytes(32), FakeEntropy()).open(sealed, b"blob-id")
    with pytest.raises(IntegrityError):
        AEAD.open(sealed, b"other-id")
    with pytest.raises(IntegrityError):
        AEAD.open(sealed)


REGIONS = {"nonce0": 0, "nonce11": 11, "ct0": 12, "ct8": 20, "ct-last": -17, "tag0": -16, "tag-last": -1}


@pytest.mark.parametrize("position", REGIONS.values(), ids=REGIONS.keys())
def test_flip_in_each_region_fails(position):
    sealed = bytearray(AEAD.seal(b"0123456789abcdef", b"aad"))
    sealed[position] ^= 0x01
    with pytest.raises(IntegrityError, match="data corrupt or tampered"):
        AEAD.open(sealed, b"aad")


@pytest.mark.parametrize("length", [0, 1, 12, 27])
def test_too_short_input_fails(length):
    with pytest.raises(IntegrityError, match="authentication failed"):
        AEAD.open(bytes(length))


def test_bad_key_length():
    for key in (b"", bytes(16), bytes(31), bytes(33)):
        with pytest.raises(UsageError):
            Aead(key, FakeEntropy())


def test_short_nonce_from_entropy_refused():
    class Broken(Entropy):
        def token_bytes(self, n):
            return b"\x00" * (n - 1)

    with pytest.raises(UsageError, match="nonce"):
        Aead(KEY, Broken()).seal(b"x")


def test_repr_hides_key():
    assert KEY.hex() not in repr(AEAD)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2048), st.binary(max_size=64))
def test_property_round_trip(plaintext, aad):
    sealed = AEAD.seal(plaintext, aad)
    assert len(sealed) == len(plaintext) + OVERHEAD
    assert AEAD.open(sealed, aad) == plaintext


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512), st.binary(max_size=32), st.data())
def test_property_any_single_byte_corruption_detected(plaintext, aad, data):
    sealed = bytearray(AEAD.seal(plaintext, aad))
    index = data.draw(st.integers(0, len(sealed) - 1), label="index")
    sealed[index] ^= data.draw(st.integers(1, 255), label="xor")
    with pytest.raises(IntegrityError):
        AEAD.open(bytes(sealed), aad)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=256), st.binary(min_size=1, max_size=32), st.data())
def test_property_aad_change_truncation_and_extension_detected(plaintext, aad, data):
    sealed = AEAD.seal(plaintext, aad)
    index = data.draw(st.integers(0, len(aad) - 1))
    bad_aad = aad[:index] + bytes([aad[index] ^ 0x80]) + aad[index + 1 :]
    with pytest.raises(IntegrityError):
        AEAD.open(sealed, bad_aad)
    cut = data.draw(st.integers(0, len(sealed) - 1))
    with pytest.raises(IntegrityError):
        AEAD.open(sealed[:cut], aad)
    with pytest.raises(IntegrityError):
        AEAD.open(sealed + data.draw(st.binary(min_size=1, max_size=4)), aad)
