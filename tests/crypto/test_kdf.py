"""KdfParams and derive_key: parameters, JSON form, range checks, determinism."""

from __future__ import annotations

import json
import time

import pytest

from ebas.crypto import kdf
from ebas.crypto.kdf import ARGON2ID, SCRYPT, KdfParams, derive_key
from ebas.errors import KeyFileError, UsageError
from ebas.runtime import FakeEntropy


@pytest.fixture
def entropy():
    return FakeEntropy(7)


def test_production_defaults(entropy):
    a = KdfParams.new(entropy)
    assert (a.algorithm, a.time_cost, a.memory_kib, a.parallelism) == (ARGON2ID, 2, 24576, 2)
    assert len(a.salt) == kdf.SALT_LEN
    s = KdfParams.new(entropy, SCRYPT)
    assert (s.n, s.r, s.p) == (2**17, 8, 1)
    assert s.memory_bytes() == 128 * 1024**2 and a.memory_bytes() == 24 * 1024**2


@pytest.mark.parametrize("algorithm", [ARGON2ID, SCRYPT])
def test_production_params_derive_in_reasonable_time(entropy, algorithm):
    params = KdfParams.new(entropy, algorithm)
    start = time.perf_counter()
    key = derive_key(b"correct horse", params)
    elapsed = time.perf_counter() - start
    assert len(key) == 32
    assert elapsed < 5  # measured ~0.08 s (argon2id) and ~0.25 s (scrypt) on 2 vCPUs


def test_unknown_algorithm_refused(entropy):
    for factory in (KdfParams.new, KdfParams.fast_for_tests):
        with pytest.raises(UsageError, match="unknown KDF algorithm"):
            factory(entropy, "pbkdf2")


@pytest.mark.parametrize("algorithm", [ARGON2ID, SCRYPT])
def test_derive_is_deterministic_and_input_sensitive(entropy, algorithm):
    params = KdfParams.fast_for_tests(entropy, algorithm)
    key = derive_key(b"pw", params)
    assert len(key) == 32
    assert derive_key(b"pw", params) == key
    assert derive_key(bytearray(b"pw"), params) == key
    assert derive_key(b"pw2", params) != key
    other_salt = KdfParams.fast_for_tests(entropy, algorithm)
    assert other_salt.salt != params.salt
    assert derive_key(b"pw", other_salt) != key


def test_derive_matches_reference_libraries(entropy):
    from argon2.low_level import Type, hash_secret_raw
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    a = KdfParams.fast_for_tests(entropy)
    assert derive_key(b"pw", a) == hash_secret_raw(b"pw", a.salt, 1, 8, 1, 32, Type.ID)
    s = KdfParams.fast_for_tests(entropy, SCRYPT)
    assert derive_key(b"pw", s) == Scrypt(salt=s.salt, length=32, n=16, r=1, p=1).derive(b"pw")


def test_derive_refuses_str_password(entropy):
    with pytest.raises(UsageError):
        derive_key("pw", KdfParams.fast_for_tests(entropy))  # type: ignore[arg-type]


def test_derive_failure_is_a_key_file_error(entropy, monkeypatch):
    def boom(*args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr(kdf, "hash_secret_raw", boom)
    with pytest.raises(KeyFileError, match="key derivation"):
        derive_key(b"pw", KdfParams.fast_for_tests(entropy))


@pytest.mark.parametrize("algorithm", [ARGON2ID, SCRYPT])
def test_dict_round_trip_is_json(entropy, algorithm):
    params = KdfParams.new(entropy, algorithm)
    d = params.to_dict()
    assert KdfParams.from_dict(json.loads(json.dumps(d))) == params
    assert set(d) == {"algorithm", "salt", *kdf._FIELDS[algorithm]}


def test_repr_hides_salt(entropy):
    params = KdfParams.fast_for_tests(entropy)
    assert "salt" not in repr(params) and "time_cost=1" in repr(params)


def _argon(**over):
    d = {"algorithm": "argon2id", "salt": "AAAAAAAAAAAAAAAAAAAAAA==", "time_cost": 3}
    d.update(memory_kib=65536, parallelism=2)
    d.update(over)
    return d


def _scrypt(**over):
    d = {"algorithm": "scrypt", "salt": "AAAAAAAAAAAAAAAAAAAAAA==", "n": 16, "r": 1, "p": 1}
    d.update(over)
    return d


@pytest.mark.parametrize(
    "data",
    [
        _argon(memory_kib=2**30),  # 1 TiB
        _argon(memory_kib=4),
        _argon(time_cost=0),
        _argon(time_cost=10**6),
        _argon(parallelism=0),
        _argon(parallelism=1000),
        _argon(time_cost=True),
        _argon(time_cost=3.0),
        _argon(time_cost="3"),
        _argon(salt="AAAA"),  # too short
        _argon(salt="not base64!"),
        _argon(salt=123),
        _argon(salt="é"),
        _argon(extra=1),
        {k: v for k, v in _argon().items() if k != "time_cost"},
        _argon(algorithm="pbkdf2"),
        _argon(n=16),
        _scrypt(n=2**40),  # 128 TiB
        _scrypt(n=2**24, r=8),  # 16 GiB
        _scrypt(n=1000),
        _scrypt(n=1),
        _scrypt(r=0),
        _scrypt(r=1000),
        _scrypt(p=0),
        _scrypt(p=10**6),
        ["argon2id"],
        None,
    ],
)
def test_from_dict_refuses_bad_or_dangerous_params(data, monkeypatch):
    called = []
    monkeypatch.setattr(kdf, "hash_secret_raw", lambda *a, **k: called.append(1))
    with pytest.raises(KeyFileError):
        KdfParams.from_dict(data)
    assert not called


def test_constructor_validates():
    salt = bytes(16)
    with pytest.raises(UsageError, match="invalid KDF parameters"):
        KdfParams(ARGON2ID, salt, time_cost=1, memory_kib=8, parallelism=1, n=16)
    with pytest.raises(UsageError):
        KdfParams(SCRYPT, salt)
    with pytest.raises(UsageError):
        KdfParams(ARGON2ID, "not bytes", time_cost=1, memory_kib=8, parallelism=1)  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        KdfParams("md5", salt)
    ok = KdfParams(ARGON2ID, bytes(64), time_cost=64, memory_kib=4 * 1024**2, parallelism=64)
    assert ok.memory_bytes() == 4 * 1024**3


@pytest.mark.parametrize("algorithm", [ARGON2ID, SCRYPT])
def test_test_parameters_are_weak_and_production_ones_are_not(entropy, algorithm):
    assert KdfParams.new(entropy, algorithm).weakness() is None
    why = KdfParams.fast_for_tests(entropy, algorithm).weakness()
    assert why and "below the minimum" in why


def test_the_weakness_floor_is_owasps_smallest_setting(entropy):
    salt = entropy.token_bytes(16)
    assert KdfParams(ARGON2ID, salt, time_cost=2, memory_kib=19 * 1024, parallelism=1).weakness() is None
    assert KdfParams(ARGON2ID, salt, time_cost=1, memory_kib=46 * 1024, parallelism=1).weakness() is None
    assert KdfParams(ARGON2ID, salt, time_cost=1, memory_kib=19 * 1024, parallelism=1).weakness()
    assert KdfParams(ARGON2ID, salt, time_cost=10, memory_kib=18 * 1024, parallelism=1).weakness()
    assert KdfParams(SCRYPT, salt, n=2**14, r=8, p=1).weakness() is None
    assert KdfParams(SCRYPT, salt, n=2**13, r=8, p=1).weakness()
