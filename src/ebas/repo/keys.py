"""Key files: the repository's master key, sealed under keys derived from passwords.

Format of ``keys/<key id>`` (plain JSON, readable without a password)::

    {"version": 1, "created": <ns>, "hostname": "...", "username": "...",
     "kdf": {KdfParams.to_dict()}, "data": "<base64 AES-256-GCM sealed master key>"}

* The key-encryption key is ``derive_key(password, kdf)``; ``data`` seals a small JSON
  object with the master key's ``enc_key`` and ``id_key``.
* The AEAD's associated data is a canonical encoding of every field except ``data``,
  so editing the KDF parameters, hostname, username, created time or version makes the
  key file unusable (indistinguishable from a wrong password, by design).
* The key id is the unkeyed BLAKE3 of the file's exact bytes, in hex. A file whose
  bytes do not hash to its name, or that is not byte for byte the canonical encoding
  of its own fields (``json.dumps(sort_keys=True, indent=2)`` plus a newline), is
  reported as damaged and never used: one key, one byte form, one id.

Ordering rules: a new key is written and read back before an old one is deleted, so
there is never a moment with no valid key; the last intact key and the key in use are
never removed. Passwords are ``bytes`` (any bytes: a password file need not be UTF-8) or ``str``
(encoded as UTF-8, not normalised; surrogate escapes become the bytes they stand for).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from ebas.crypto.aead import OVERHEAD, Aead
from ebas.crypto.ids import IdHasher, pack_id
from ebas.crypto.kdf import KdfParams, derive_key
from ebas.errors import EbasError, IntegrityError, KeyFileError, ObjectNotFound, UsageError, WrongPassword
from ebas.runtime import Clock, Entropy
from ebas.storage.base import Store

KEYS_PREFIX = "keys/"
KEY_FILE_VERSION = 1
MASTER_KEY_LEN = 32
_AAD_DOMAIN = b"ebas key file\x00"
_FIELDS = frozenset({"version", "created", "hostname", "username", "kdf", "data"})
_MAX_TEXT = 1024


@dataclass(frozen=True, repr=False)
class MasterKey:
    """The repository's secrets: ``enc_key`` seals all data, ``id_key`` keys blob ids.

    Both are 32 random bytes; ``repr`` never shows them.
    """

    enc_key: bytes
    id_key: bytes

    def __post_init__(self) -> None:
        for name in ("enc_key", "id_key"):
            if not isinstance(getattr(self, name), bytes) or len(getattr(self, name)) != MASTER_KEY_LEN:
                raise UsageError(f"master key {name} must be {MASTER_KEY_LEN} bytes")

    @classmethod
    def generate(cls, entropy: Entropy) -> "MasterKey":
        """A new master key from ``entropy`` (use the system entropy for real repositories)."""
        return cls(entropy.token_bytes(MASTER_KEY_LEN), entropy.token_bytes(MASTER_KEY_LEN))

    def aead(self, entropy: Entropy) -> Aead:
        """The AEAD that seals repository data under ``enc_key``."""
        return Aead(self.enc_key, entropy)

    def ids(self) -> IdHasher:
        """The hasher that computes blob ids under ``id_key``."""
        return IdHasher(self.id_key)

    def _to_plaintext(self) -> bytes:
        doc = {"enc_key": _b64(self.enc_key), "id_key": _b64(self.id_key)}
        return json.dumps(doc, sort_keys=True).encode()

    @classmethod
    def _from_plaintext(cls, data: bytes) -> "MasterKey":
        obj = json.loads(data)
        return cls(_unb64(obj["enc_key"]), _unb64(obj["id_key"]))

    def __repr__(self) -> str:
        return "MasterKey(<secret>)"


@dataclass(frozen=True)
class KeyInfo:
    """The plain (unauthenticated until opened) fields of one key file.

    ``problem`` is None for an intact file; otherwise it says why the file is unusable
    and the other fields may be empty.
    """

    id: str
    created: int
    hostname: str
    username: str
    kdf: str
    problem: str | None = None

    def to_dict(self) -> dict:
        """A JSON-able dict for ``--json`` output."""
        return {
            "id": self.id,
            "created": self.created,
            "hostname": self.hostname,
            "username": self.username,
            "kdf": self.kdf,
            "problem": self.problem,
        }


@dataclass(frozen=True)
class _KeyFile:
    key_id: str
    created: int
    hostname: str
    username: str
    kdf: KdfParams
    sealed: bytes

    def aad(self) -> bytes:
        fields = {
            "version": KEY_FILE_VERSION,
            "created": self.created,
            "hostname": self.hostname,
            "username": self.username,
            "kdf": self.kdf.to_dict(),
        }
        return _AAD_DOMAIN + json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()

    def encode(self) -> bytes:
        doc = {
            "version": KEY_FILE_VERSION,
            "created": self.created,
            "hostname": self.hostname,
            "username": self.username,
            "kdf": self.kdf.to_dict(),
            "data": _b64(self.sealed),
        }
        return (json.dumps(doc, sort_keys=True, indent=2) + "\n").encode()


# ------------------------------------------------------------------ public API
def add_key(
    store: Store,
    master: MasterKey,
    password: bytes | str,
    *,
    entropy: Entropy,
    clock: Clock,
    hostname: str,
    username: str,
    kdf: KdfParams | None = None,
) -> str:
    """Write a new key file sealing ``master`` under ``password``; return its key id.

    ``kdf`` defaults to :meth:`KdfParams.new` (argon2id production parameters). The file
    is read back and compared before this returns. An empty password is refused.
    """
    secret = _password(password)
    if not secret:
        raise UsageError("refusing to create a key with an empty password")
    for label, text in (("hostname", hostname), ("username", username)):
        if not isinstance(text, str) or len(text) > _MAX_TEXT:
            raise UsageError(f"{label} must be a string of at most {_MAX_TEXT} characters")
    params = kdf if kdf is not None else KdfParams.new(entropy)
    draft = _KeyFile("", clock.now_ns(), hostname, username, params, b"")
    sealed = Aead(derive_key(secret, params), entropy).seal(master._to_plaintext(), draft.aad())
    data = _KeyFile("", draft.created, hostname, username, params, sealed).encode()
    key_id = pack_id(data).hex()
    store.put(KEYS_PREFIX + key_id, data)
    if store.get(KEYS_PREFIX + key_id) != data:
        raise KeyFileError(f"key file {_short(key_id)} did not read back as written", hint="check the store")
    return key_id


def open_master_key(
    store: Store, password: bytes | str, *, warnings: list[str] | None = None
) -> tuple[MasterKey, str]:
    """Return ``(master key, key id)`` from the first intact key file ``password`` opens.

    Key files are tried in name order. Damaged files (bytes not hashing to the name,
    malformed JSON or fields, not in canonical form) are skipped and described in ``warnings`` if a list is
    given. Raises ``KeyFileError`` if there are no key files, or if none opens and some
    are damaged (the user's key may be among them); ``WrongPassword`` if none opens and
    all are intact.
    """
    secret = _password(password)
    names = _key_names(store)
    if not names:
        raise KeyFileError(
            "repository has no key files (keys/ is empty)",
            hint="restore the keys/ directory from a copy of this repository",
        )
    intact, problems = _load_all(store, names)
    if warnings is not None:
        warnings.extend(problems)
    for keyfile in intact:
        master = _try_open(keyfile, secret)
        if master is not None:
            return master, keyfile.key_id
    if problems:
        tail = f"; the password opens none of the {len(intact)} intact key file(s)" if intact else ""
        raise KeyFileError("; ".join(problems) + tail)
    raise WrongPassword(f"the password opens none of the {len(intact)} key file(s) in this repository")


def list_keys(store: Store) -> list[KeyInfo]:
    """Every key file's plain fields, oldest first; damaged files are listed with ``problem``.

    Needs no password; the fields are authenticated only when the key is opened.
    """
    infos = []
    for name in _key_names(store):
        try:
            kf = _load(store, name)
        except KeyFileError as err:
            infos.append(KeyInfo(name[len(KEYS_PREFIX) :], 0, "", "", "", problem=err.message))
            continue
        except ObjectNotFound:
            continue
        infos.append(KeyInfo(kf.key_id, kf.created, kf.hostname, kf.username, kf.kdf.algorithm))
    return sorted(infos, key=lambda i: (i.created, i.id))


def resolve_key_id(store: Store, prefix: str) -> str:
    """The full id of the one key file whose id starts with ``prefix`` (``UsageError`` otherwise)."""
    wanted = prefix.strip().lower()
    if not wanted:
        raise UsageError("empty key id")
    ids = [n[len(KEYS_PREFIX) :] for n in _key_names(store)]
    if prefix in ids:  # exact name, including odd (damaged) names that are not hex
        return prefix
    matches = [i for i in ids if i.startswith(wanted)]
    if not matches:
        raise UsageError(
            f"no key file has an id starting with {prefix!r}", hint="list keys with 'ebas key list'"
        )
    if len(matches) > 1:
        raise UsageError(
            f"key id {prefix!r} is ambiguous: it matches {', '.join(_short(m) for m in matches)}",
            hint="give more characters of the key id",
        )
    return matches[0]


def remove_key(store: Store, key_id: str, *, current_key_id: str) -> str:
    """Delete the key file ``key_id`` (a unique prefix is enough); return its full id.

    Refuses (``UsageError``) to remove the key this session opened the repository with,
    or the last intact key file. A damaged key file may be removed (while an intact
    key remains); it is named by its file name under ``keys/``.
    """
    target = resolve_key_id(store, key_id)
    others = [i for i in list_keys(store) if i.id != target and i.problem is None]
    if not others:
        raise UsageError(
            f"refusing to remove key {_short(target)}: it is the last intact key; "
            "without it nobody could open the repository",
            hint="add another key first ('ebas key add')",
        )
    if target == current_key_id:
        raise UsageError(
            f"refusing to remove key {_short(target)}: it is the key in use by this session",
            hint="open the repository with another key's password to remove this one",
        )
    store.delete(KEYS_PREFIX + target)
    return target


def change_password(
    store: Store,
    master: MasterKey,
    current_key_id: str,
    new_password: bytes | str,
    *,
    entropy: Entropy,
    clock: Clock,
    hostname: str,
    username: str,
    kdf: KdfParams | None = None,
) -> str:
    """Replace key ``current_key_id`` by a new key for ``new_password``; return the new id.

    The new key is written and proved to open (with ``new_password``, to ``master``)
    before the old file is deleted, so a crash leaves both keys valid, never neither.
    """
    if not store.exists(KEYS_PREFIX + current_key_id):
        raise UsageError(f"key {_short(current_key_id)} is not in this repository")
    new_id = add_key(
        store, master, new_password,
        entropy=entropy, clock=clock, hostname=hostname, username=username, kdf=kdf,
    )
    opened = _try_open(_load(store, KEYS_PREFIX + new_id), _password(new_password))
    if opened != master:
        raise KeyFileError(f"new key file {_short(new_id)} does not open; the old key was kept")
    if new_id != current_key_id:
        store.delete(KEYS_PREFIX + current_key_id)
    return new_id


def key_kdf(store: Store, key_id: str) -> KdfParams:
    """The KDF parameters of key file ``key_id`` (``KeyFileError`` if it is damaged)."""
    return _load(store, KEYS_PREFIX + key_id).kdf


# ------------------------------------------------------------------ helpers
def _password(password: bytes | str) -> bytes:
    """Passwords are bytes; a str is encoded as UTF-8, with surrogate escapes (from
    ``os.fsdecode`` or a terminal that sent bytes that are not UTF-8) turned back into
    the bytes they stand for."""
    if isinstance(password, str):
        try:
            return password.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            raise UsageError("the password holds a character that cannot be encoded (a lone surrogate)") from None
    if isinstance(password, (bytes, bytearray, memoryview)):
        return bytes(password)
    raise UsageError("password must be bytes or str")


def _key_names(store: Store) -> list[str]:
    return sorted(info.name for info in store.list(KEYS_PREFIX))


def _short(key_id: str) -> str:
    return key_id[:12] + "…" if len(key_id) > 12 else key_id


def _damaged(name: str, why: str) -> KeyFileError:
    short = KEYS_PREFIX + _short(name[len(KEYS_PREFIX) :])
    return KeyFileError(f"key file {short} is damaged or was tampered with ({why})")


def _load_all(store: Store, names: list[str]) -> tuple[list[_KeyFile], list[str]]:
    """Parse every named key file: (intact files, descriptions of damaged ones)."""
    intact, problems = [], []
    for name in names:
        try:
            intact.append(_load(store, name))
        except KeyFileError as err:
            problems.append(err.message)
        except ObjectNotFound:  # removed since it was listed
            continue
    return intact, problems


def _load(store: Store, name: str) -> _KeyFile:
    """Read and strictly parse one key file; ``KeyFileError`` naming it if damaged."""
    data = store.get(name)
    key_id = name[len(KEYS_PREFIX) :]
    if pack_id(data).hex() != key_id:
        raise _damaged(name, "its content does not match its name")
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise _damaged(name, "not valid JSON") from None
    if not isinstance(doc, dict) or set(doc) != _FIELDS:
        raise _damaged(name, "unexpected or missing fields")
    if type(doc["version"]) is not int or doc["version"] != KEY_FILE_VERSION:
        why = f"unknown key file version {doc['version']!r}; this ebas knows {KEY_FILE_VERSION}"
        raise _damaged(name, why)
    created, hostname, username = doc["created"], doc["hostname"], doc["username"]
    if type(created) is not int or created < 0:
        raise _damaged(name, "bad 'created' time")
    if not isinstance(hostname, str) or not isinstance(username, str):
        raise _damaged(name, "hostname and username must be strings")
    try:
        params = KdfParams.from_dict(doc["kdf"])
    except KeyFileError as err:
        raise _damaged(name, err.message) from None
    try:
        sealed = _unb64(doc["data"])
    except (TypeError, ValueError):
        raise _damaged(name, "'data' is not base64") from None
    if len(sealed) < OVERHEAD:
        raise _damaged(name, "'data' is too short")
    keyfile = _KeyFile(key_id, created, hostname, username, params, sealed)
    if keyfile.encode() != data:
        raise _damaged(name, "not in canonical form")
    return keyfile


def _try_open(keyfile: _KeyFile, secret: bytes) -> MasterKey | None:
    """The master key if ``secret`` opens ``keyfile``, else None."""
    kek = derive_key(secret, keyfile.kdf)
    try:
        plaintext = Aead(kek, _NO_ENTROPY).open(keyfile.sealed, keyfile.aad())
    except IntegrityError:
        return None
    try:
        return MasterKey._from_plaintext(plaintext)
    except (ValueError, KeyError, TypeError, RecursionError, EbasError):
        # Authenticated yet malformed: written by a buggy or hostile password holder.
        raise KeyFileError(f"key file keys/{_short(keyfile.key_id)} holds a malformed master key") from None


class _NoEntropy(Entropy):
    def token_bytes(self, n: int) -> bytes:  # pragma: no cover - opening never needs nonces
        raise AssertionError("opening a key file needs no randomness")


_NO_ENTROPY = _NoEntropy()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    if not isinstance(text, str):
        raise TypeError("not a base64 string")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as err:
        raise ValueError(str(err)) from None
