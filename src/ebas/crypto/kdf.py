"""Password-based key derivation: argon2id (default) or scrypt.

A :class:`KdfParams` value says exactly how a key-encryption key was derived from a
password; key files store it as JSON (:meth:`KdfParams.to_dict`). Parameters read from a
file are range-checked before any work is done, so a tampered key file cannot make ebas
allocate a terabyte or spin for hours: out-of-range values raise
:class:`~ebas.errors.KeyFileError`.

Production defaults (measured on the development machine, 2 vCPUs): argon2id t=3,
m=64 MiB, p=2 takes about 0.08 s; scrypt n=2**17, r=8, p=1 (128 MiB) about 0.25 s.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from argon2.exceptions import Argon2Error
from argon2.low_level import Type, hash_secret_raw
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from ebas.errors import KeyFileError, UsageError
from ebas.runtime import Entropy

ARGON2ID = "argon2id"
SCRYPT = "scrypt"
ALGORITHMS = (ARGON2ID, SCRYPT)

KEY_LEN = 32
SALT_LEN = 16
MIN_SALT_LEN, MAX_SALT_LEN = 16, 64
MAX_MEMORY_BYTES = 4 * 1024**3  # refuse anything asking for more than 4 GiB
MAX_ARGON2_TIME = 64
MAX_ARGON2_PARALLELISM = 64
MAX_SCRYPT_R = 64
MAX_SCRYPT_P = 16

_FIELDS = {
    ARGON2ID: ("time_cost", "memory_kib", "parallelism"),
    SCRYPT: ("n", "r", "p"),
}


@dataclass(frozen=True)
class KdfParams:
    """How a 32-byte key is derived from a password; immutable and always in range.

    argon2id uses ``time_cost``, ``memory_kib`` and ``parallelism``; scrypt uses ``n``,
    ``r`` and ``p``. The fields of the other algorithm stay 0. Constructing an
    out-of-range value raises :class:`~ebas.errors.UsageError`.
    """

    algorithm: str
    salt: bytes
    time_cost: int = 0
    memory_kib: int = 0
    parallelism: int = 0
    n: int = 0
    r: int = 0
    p: int = 0

    def __post_init__(self) -> None:
        problem = self._problem()
        if problem:
            raise UsageError(f"invalid KDF parameters: {problem}")

    def _problem(self) -> str | None:
        if self.algorithm not in ALGORITHMS:
            return f"unknown algorithm {self.algorithm!r} (known: {', '.join(ALGORITHMS)})"
        if not isinstance(self.salt, bytes) or not MIN_SALT_LEN <= len(self.salt) <= MAX_SALT_LEN:
            return f"salt must be {MIN_SALT_LEN}..{MAX_SALT_LEN} bytes"
        for name in ("time_cost", "memory_kib", "parallelism", "n", "r", "p"):
            value = getattr(self, name)
            if type(value) is not int:
                return f"{name} must be an integer"
            if name not in _FIELDS[self.algorithm] and value != 0:
                return f"{name} is not a parameter of {self.algorithm}"
        if self.algorithm == ARGON2ID:
            return _argon2_problem(self.time_cost, self.memory_kib, self.parallelism)
        return _scrypt_problem(self.n, self.r, self.p)

    @classmethod
    def new(cls, entropy: Entropy, algorithm: str = ARGON2ID) -> "KdfParams":
        """Production parameters with a fresh random salt.

        argon2id t=2, m=24 MiB, p=2 (about 20-40 ms here; above OWASP's recommended
        minimum of t=2, m=19 MiB) keeps every command that opens the repository quick;
        the key file records the parameters, so stronger ones can be chosen per key.
        """
        salt = entropy.token_bytes(SALT_LEN)
        if algorithm == ARGON2ID:
            return cls(ARGON2ID, salt, time_cost=2, memory_kib=24 * 1024, parallelism=2)
        if algorithm == SCRYPT:
            return cls(SCRYPT, salt, n=2**17, r=8, p=1)
        raise UsageError(f"unknown KDF algorithm {algorithm!r} (known: {', '.join(ALGORITHMS)})")

    @classmethod
    def fast_for_tests(cls, entropy: Entropy, algorithm: str = ARGON2ID) -> "KdfParams":
        """Tiny parameters (well under a millisecond) for test suites, passed through the
        API (``kdf=``); no command-line switch or environment variable selects them. A key
        made with them is below :meth:`weakness`'s floor, so every open warns."""
        salt = entropy.token_bytes(SALT_LEN)
        if algorithm == ARGON2ID:
            return cls(ARGON2ID, salt, time_cost=1, memory_kib=8, parallelism=1)
        if algorithm == SCRYPT:
            return cls(SCRYPT, salt, n=16, r=1, p=1)
        raise UsageError(f"unknown KDF algorithm {algorithm!r} (known: {', '.join(ALGORITHMS)})")

    def to_dict(self) -> dict:
        """A JSON-able dict: algorithm, base64 salt and only this algorithm's fields."""
        out: dict = {"algorithm": self.algorithm, "salt": base64.b64encode(self.salt).decode("ascii")}
        for name in _FIELDS[self.algorithm]:
            out[name] = getattr(self, name)
        return out

    @classmethod
    def from_dict(cls, data: object) -> "KdfParams":
        """Parse :meth:`to_dict` output strictly; anything odd raises ``KeyFileError``.

        Unknown or missing fields, non-integers, bad base64 and out-of-range values are
        all refused before any key derivation is attempted.
        """
        if not isinstance(data, dict):
            raise KeyFileError("KDF parameters are not a JSON object")
        algorithm = data.get("algorithm")
        if algorithm not in ALGORITHMS:
            raise KeyFileError(f"unknown KDF algorithm {algorithm!r}")
        expected = {"algorithm", "salt", *_FIELDS[algorithm]}
        if set(data) != expected:
            fields = ", ".join(sorted(expected))
            raise KeyFileError(f"KDF parameters for {algorithm} must have exactly the fields {fields}")
        salt_text = data["salt"]
        if not isinstance(salt_text, str):
            raise KeyFileError("KDF salt is not a base64 string")
        try:
            salt = base64.b64decode(salt_text.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            raise KeyFileError("KDF salt is not valid base64") from None
        values = {name: data[name] for name in _FIELDS[algorithm]}
        try:
            return cls(algorithm, salt, **values)
        except UsageError as err:
            raise KeyFileError(err.message) from None

    def weakness(self) -> str | None:
        """Why these parameters are too weak for a real key, or None.

        The floor is OWASP's smallest recommended setting: argon2id with at least 19 MiB
        and 2 passes (or 46 MiB and 1 pass); scrypt with at least 16 MiB (n*r >= 2**17).
        Test parameters (:meth:`fast_for_tests`) are far below it.
        """
        if self.algorithm == ARGON2ID:
            if self.memory_kib >= 46 * 1024 or (self.memory_kib >= 19 * 1024 and self.time_cost >= 2):
                return None
            return (f"argon2id with {self.memory_kib} KiB and {self.time_cost} pass(es) is below the minimum "
                    "(19 MiB and 2 passes)")
        if self.n * self.r >= 2**17:
            return None
        return f"scrypt n={self.n} r={self.r} is below the minimum (n*r >= 2**17, 16 MiB)"

    def memory_bytes(self) -> int:
        """Memory the derivation needs, in bytes (approximate for scrypt)."""
        if self.algorithm == ARGON2ID:
            return self.memory_kib * 1024
        return 128 * self.r * self.n

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={getattr(self, k)}" for k in _FIELDS[self.algorithm])
        return f"KdfParams({self.algorithm}, {fields})"


def _argon2_problem(t: int, m: int, par: int) -> str | None:
    if not 1 <= t <= MAX_ARGON2_TIME:
        return f"argon2id time_cost {t} outside 1..{MAX_ARGON2_TIME}"
    if not 1 <= par <= MAX_ARGON2_PARALLELISM:
        return f"argon2id parallelism {par} outside 1..{MAX_ARGON2_PARALLELISM}"
    if not 8 * par <= m <= MAX_MEMORY_BYTES // 1024:
        return f"argon2id memory {m} KiB outside {8 * par}..{MAX_MEMORY_BYTES // 1024} KiB"
    return None


def _scrypt_problem(n: int, r: int, p: int) -> str | None:
    if n < 2 or n & (n - 1):
        return f"scrypt n={n} is not a power of two >= 2"
    if not 1 <= r <= MAX_SCRYPT_R:
        return f"scrypt r={r} outside 1..{MAX_SCRYPT_R}"
    if not 1 <= p <= MAX_SCRYPT_P:
        return f"scrypt p={p} outside 1..{MAX_SCRYPT_P}"
    if 128 * r * n > MAX_MEMORY_BYTES:
        return f"scrypt needs {128 * r * n} bytes of memory, more than {MAX_MEMORY_BYTES}"
    return None


def derive_key(password: bytes, params: KdfParams) -> bytes:
    """Derive a 32-byte key from ``password`` with ``params``; same inputs, same key.

    Raises :class:`~ebas.errors.KeyFileError` if the derivation itself fails (for example
    when this machine cannot allocate the memory the parameters ask for).
    """
    if isinstance(password, str):
        raise UsageError("password must be bytes; encode it (UTF-8) first")
    password = bytes(password)
    try:
        if params.algorithm == ARGON2ID:
            return hash_secret_raw(
                password,
                params.salt,
                time_cost=params.time_cost,
                memory_cost=params.memory_kib,
                parallelism=params.parallelism,
                hash_len=KEY_LEN,
                type=Type.ID,
            )
        return Scrypt(salt=params.salt, length=KEY_LEN, n=params.n, r=params.r, p=params.p).derive(password)
    except (Argon2Error, MemoryError, ValueError) as err:
        raise KeyFileError(
            f"key derivation ({params!r}) failed: {err}",
            hint="the parameters may need more memory than this machine has; open with another key",
        ) from None
