"""Key files: add / open / list / remove / change password, and every way they can be damaged."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ebas.crypto.ids import pack_id
from ebas.crypto.kdf import SCRYPT, KdfParams
from ebas.errors import KeyFileError, ObjectNotFound, UsageError, WrongPassword
from ebas.repo import keys
from ebas.repo.keys import (
    KeyInfo,
    MasterKey,
    add_key,
    change_password,
    list_keys,
    open_master_key,
    remove_key,
    resolve_key_id,
)
from ebas.runtime import FakeClock, FakeEntropy

try:
    from ebas.storage.backends.memory import MemoryStore
except ImportError:  # pragma: no cover - until the memory backend lands
    from ebas.storage.base import ObjectInfo, Store

    class MemoryStore(Store):  # type: ignore[no-redef]
        """Just enough of a store for these tests."""

        def __init__(self):
            self.objects: dict[str, bytes] = {}

        def put(self, name, data):
            self.objects[name] = bytes(data)

        def get(self, name, start=0, length=None):
            if name not in self.objects:
                raise ObjectNotFound(name)
            data = self.objects[name]
            return data[start:] if length is None else data[start : start + length]

        def stat(self, name):
            return ObjectInfo(name, len(self.get(name)))

        def list(self, prefix=""):
            return iter([ObjectInfo(n, len(d)) for n, d in self.objects.items() if n.startswith(prefix)])

        def delete(self, name):
            if self.objects.pop(name, None) is None:
                raise ObjectNotFound(name)

        begin_upload = upload_part = parts = complete = abort = uploads = None


ENTROPY = FakeEntropy(42)
MASTER = MasterKey.generate(FakeEntropy(1))


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def store():
    return MemoryStore()


def _add(store, password, clock, *, host="host-a", user="alice", master=MASTER, algorithm="argon2id"):
    clock.advance(1)
    return add_key(
        store,
        master,
        password,
        entropy=ENTROPY,
        clock=clock,
        hostname=host,
        username=user,
        kdf=KdfParams.fast_for_tests(ENTROPY, algorithm),
    )


def _names(store):
    return sorted(i.name for i in store.list("keys/"))


def _rewrite(store, key_id, edit, *, rename=True):
    """Edit a key file's JSON; store it under its new hash (rename) or its old name."""
    doc = json.loads(store.get("keys/" + key_id))
    edit(doc)
    data = json.dumps(doc).encode()
    if rename:  # keep the canonical layout so that only the edited value differs
        data = (json.dumps(doc, sort_keys=True, indent=2) + "\n").encode()
    store.delete("keys/" + key_id)
    new_id = pack_id(data).hex() if rename else key_id
    store.put("keys/" + new_id, data)
    return new_id


# ------------------------------------------------------------------ master key
def test_master_key_generate_and_helpers():
    m = MasterKey.generate(FakeEntropy(5))
    assert len(m.enc_key) == len(m.id_key) == 32 and m.enc_key != m.id_key
    assert m.enc_key.hex() not in repr(m) and "secret" in repr(m)
    aead = m.aead(FakeEntropy(6))
    assert aead.open(aead.seal(b"x", b"id"), b"id") == b"x"
    assert len(m.ids().blob_id(b"chunk")) == 32
    assert m.ids().blob_id(b"chunk") != MASTER.ids().blob_id(b"chunk")


def test_master_key_lengths_checked():
    with pytest.raises(UsageError):
        MasterKey(bytes(31), bytes(32))
    with pytest.raises(UsageError):
        MasterKey(bytes(32), "x" * 32)  # type: ignore[arg-type]


# ------------------------------------------------------------------ add / open
@pytest.mark.parametrize("algorithm", ["argon2id", SCRYPT])
def test_add_then_open_round_trip(store, clock, algorithm):
    key_id = _add(store, "s3cret", clock, algorithm=algorithm)
    assert _names(store) == ["keys/" + key_id]
    assert open_master_key(store, "s3cret") == (MASTER, key_id)
    assert open_master_key(store, b"s3cret") == (MASTER, key_id)


def test_key_file_is_plain_json_bound_to_its_name(store, clock):
    key_id = _add(store, "pw", clock, host="db01", user="backup")
    data = store.get("keys/" + key_id)
    assert pack_id(data).hex() == key_id and len(key_id) == 64
    doc = json.loads(data)
    assert set(doc) == {"version", "created", "hostname", "username", "kdf", "data"}
    assert doc["version"] == 1 and doc["created"] == clock.now_ns()
    assert (doc["hostname"], doc["username"]) == ("db01", "backup")
    assert doc["kdf"]["algorithm"] == "argon2id"
    sealed = base64.b64decode(doc["data"])
    assert MASTER.enc_key not in sealed and base64.b64encode(MASTER.enc_key) not in data


def test_default_kdf_is_production_argon2id(store, clock):
    key_id = add_key(store, MASTER, "pw", entropy=ENTROPY, clock=clock, hostname="h", username="u")
    kdf = json.loads(store.get("keys/" + key_id))["kdf"]
    assert kdf["algorithm"] == "argon2id"
    assert (kdf["time_cost"], kdf["memory_kib"], kdf["parallelism"]) == (2, 24576, 2)
    assert open_master_key(store, "pw") == (MASTER, key_id)


def test_add_key_refuses_bad_input(store, clock):
    with pytest.raises(UsageError, match="empty password"):
        _add(store, "", clock)
    with pytest.raises(UsageError, match="password must be"):
        _add(store, 1234, clock)
    with pytest.raises(UsageError, match="hostname"):
        _add(store, "pw", clock, host=None)
    with pytest.raises(UsageError, match="username"):
        _add(store, "pw", clock, user="x" * 5000)
    assert _names(store) == []


def test_add_key_reads_back(store, clock, monkeypatch):
    real_get = store.get
    monkeypatch.setattr(store, "get", lambda name, *a, **k: real_get(name, *a, **k)[:-1])
    with pytest.raises(KeyFileError, match="did not read back"):
        _add(store, "pw", clock)


def test_several_keys_open_the_same_master(store, clock):
    a = _add(store, "alpha", clock)
    b = _add(store, bytearray(b"beta"), clock, host="host-b", user="bob")
    assert open_master_key(store, "alpha") == (MASTER, a)
    assert open_master_key(store, "beta") == (MASTER, b)


def test_wrong_password(store, clock):
    _add(store, "right", clock)
    _add(store, "also-right", clock)
    with pytest.raises(WrongPassword, match="none of the 2 key file"):
        open_master_key(store, "wrong")
    with pytest.raises(WrongPassword):
        open_master_key(store, "")


def test_no_key_files(store):
    store.put("config", b"{}")
    with pytest.raises(KeyFileError, match="repository has no key files"):
        open_master_key(store, "pw")


# ------------------------------------------------------------------ tampering
def _edit_field(field, value):
    def edit(doc):
        doc[field] = value

    return edit


def _edit_kdf(field, value):
    def edit(doc):
        doc["kdf"][field] = value

    return edit


def _flip_data(doc):
    raw = bytearray(base64.b64decode(doc["data"]))
    raw[len(raw) // 2] ^= 1
    doc["data"] = base64.b64encode(raw).decode()


TAMPERS = {
    "hostname": _edit_field("hostname", "evil"),
    "username": _edit_field("username", "mallory"),
    "created": _edit_field("created", 1),
    "kdf-time": _edit_kdf("time_cost", 2),
    "kdf-memory": _edit_kdf("memory_kib", 16),
    "kdf-salt": _edit_kdf("salt", base64.b64encode(bytes(16)).decode()),
    "data": _flip_data,
}


@pytest.mark.parametrize("tamper", TAMPERS.values(), ids=TAMPERS.keys())
def test_tampered_field_renamed_to_match_is_refused(store, clock, tamper):
    key_id = _add(store, "pw", clock)
    _rewrite(store, key_id, tamper, rename=True)
    with pytest.raises(WrongPassword):
        open_master_key(store, "pw")


@pytest.mark.parametrize("tamper", TAMPERS.values(), ids=TAMPERS.keys())
def test_tampered_field_under_old_name_is_reported_as_damaged(store, clock, tamper):
    key_id = _add(store, "pw", clock)
    _rewrite(store, key_id, tamper, rename=False)
    with pytest.raises(KeyFileError, match=f"key file keys/{key_id[:12]}… is damaged or was tampered with"):
        open_master_key(store, "pw")


def test_dangerous_kdf_params_are_refused_before_deriving(store, clock, monkeypatch):
    key_id = _add(store, "pw", clock)
    _rewrite(store, key_id, _edit_kdf("memory_kib", 2**30), rename=True)  # 1 TiB
    monkeypatch.setattr(keys, "derive_key", lambda *a: pytest.fail("derive_key must not run"))
    with pytest.raises(KeyFileError, match="argon2id memory"):
        open_master_key(store, "pw")


@pytest.mark.parametrize(
    "edit, why",
    [
        (_edit_field("version", 2), "unknown key file version 2"),
        (_edit_field("version", True), "unknown key file version"),
        (_edit_field("extra", "x"), "unexpected or missing fields"),
        (lambda d: d.pop("hostname"), "unexpected or missing fields"),
        (_edit_field("created", -5), "created"),
        (_edit_field("created", "yesterday"), "created"),
        (_edit_field("hostname", 7), "strings"),
        (_edit_field("data", "!!!"), "not base64"),
        (_edit_field("data", 5), "not base64"),
        (_edit_field("data", "AAAA"), "too short"),
        (_edit_field("kdf", "argon2id"), "not a JSON object"),
    ],
)
def test_malformed_fields_are_damage(store, clock, edit, why):
    key_id = _add(store, "pw", clock)
    _rewrite(store, key_id, edit, rename=True)
    with pytest.raises(KeyFileError, match=why):
        open_master_key(store, "pw")


@pytest.mark.parametrize("content", [b"", b"{", b"\xff\xfe", b"[]", b'"text"'])
def test_truncated_or_garbage_file(store, clock, content):
    key_id = _add(store, "pw", clock)
    data = store.get("keys/" + key_id)
    store.delete("keys/" + key_id)
    store.put("keys/" + key_id, data[: len(data) // 2])  # truncated, same name
    with pytest.raises(KeyFileError, match="does not match its name"):
        open_master_key(store, "pw")
    store.delete("keys/" + key_id)
    store.put("keys/" + pack_id(content).hex(), content)  # garbage, consistent name
    with pytest.raises(KeyFileError, match="damaged"):
        open_master_key(store, "pw")


def test_odd_names_under_keys_are_damage(store, clock):
    _add(store, "pw", clock)
    store.put("keys/README", b"hello")
    warnings: list[str] = []
    assert open_master_key(store, "pw", warnings=warnings)[0] == MASTER
    assert len(warnings) == 1 and "keys/README" in warnings[0]


def test_damaged_file_does_not_stop_another_key(store, clock):
    bad = _add(store, "other", clock)
    good = _add(store, "pw", clock)
    store.put("keys/" + bad, b"garbage")
    warnings: list[str] = []
    assert open_master_key(store, "pw", warnings=warnings) == (MASTER, good)
    assert warnings == [
        f"key file keys/{bad[:12]}… is damaged or was tampered with (its content does not match its name)"
    ]
    assert open_master_key(store, "pw") == (MASTER, good)  # warnings are optional


def test_damaged_plus_intact_with_wrong_password_names_both(store, clock):
    bad = _add(store, "pw", clock)
    _add(store, "other", clock)
    store.put("keys/" + bad, b"garbage")
    with pytest.raises(KeyFileError) as info:
        open_master_key(store, "pw")
    assert bad[:12] in info.value.message
    assert "opens none of the 1 intact key file" in info.value.message
    assert info.value.exit_code == 12


def test_authenticated_but_malformed_master_is_a_key_file_error(store, clock, monkeypatch):
    monkeypatch.setattr(MasterKey, "_to_plaintext", lambda self: b'{"enc_key": "AAAA"}')
    _add(store, "pw", clock)
    monkeypatch.undo()
    with pytest.raises(KeyFileError, match="malformed master key"):
        open_master_key(store, "pw")


def test_file_vanishing_between_list_and_get_is_skipped(store, clock, monkeypatch):
    gone = _add(store, "old", clock)
    good = _add(store, "pw", clock)
    real_get = store.get

    def get(name, *a, **k):
        if name.endswith(gone):
            raise ObjectNotFound(name)
        return real_get(name, *a, **k)

    monkeypatch.setattr(store, "get", get)
    assert open_master_key(store, "pw") == (MASTER, good)
    assert [i.id for i in list_keys(store)] == [good]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), rename=st.booleans())
def test_property_any_single_byte_corruption_never_opens(store, data, rename):
    for name in _names(store):
        store.delete(name)
    key_id = _add(store, "pw", FakeClock())
    raw = bytearray(store.get("keys/" + key_id))
    index = data.draw(st.integers(0, len(raw) - 1), label="index")
    raw[index] ^= data.draw(st.integers(1, 255), label="xor")
    store.delete("keys/" + key_id)
    store.put("keys/" + (pack_id(bytes(raw)).hex() if rename else key_id), bytes(raw))
    with pytest.raises((KeyFileError, WrongPassword)):
        open_master_key(store, "pw")


def test_non_canonical_but_equivalent_file_is_refused(store, clock):
    key_id = _add(store, "pw", clock)
    reformatted = json.dumps(json.loads(store.get("keys/" + key_id))).encode()  # same values, other spacing
    store.delete("keys/" + key_id)
    store.put("keys/" + pack_id(reformatted).hex(), reformatted)
    with pytest.raises(KeyFileError, match="canonical"):
        open_master_key(store, "pw")


# ------------------------------------------------------------------ list / resolve
def test_list_keys_shows_plain_fields_oldest_first(store, clock):
    a = _add(store, "a", clock, host="h1", user="u1")
    b = _add(store, "b", clock, host="h2", user="u2", algorithm=SCRYPT)
    store.put("keys/" + "f" * 64, b"junk")
    infos = list_keys(store)
    assert [i.id for i in infos] == ["f" * 64, a, b]  # damaged ones (created 0) first
    assert infos[0].problem and "damaged" in infos[0].problem
    assert infos[1] == KeyInfo(a, infos[1].created, "h1", "u1", "argon2id")
    assert infos[2].kdf == "scrypt" and infos[2].created > infos[1].created
    assert json.loads(json.dumps(infos[1].to_dict()))["hostname"] == "h1"


def test_resolve_prefixes(store, clock, monkeypatch):
    ids = {_add(store, f"pw{i}", clock) for i in range(3)}
    for key_id in ids:
        assert resolve_key_id(store, key_id[:10]) == key_id
        assert resolve_key_id(store, key_id.upper()) == key_id
    with pytest.raises(UsageError, match="no key file has an id starting with"):
        resolve_key_id(store, "xyz")
    with pytest.raises(UsageError, match="empty key id"):
        resolve_key_id(store, "  ")
    store.put("keys/ab01", b"x")
    store.put("keys/ab02", b"y")
    with pytest.raises(UsageError, match="ambiguous") as info:
        resolve_key_id(store, "ab0")
    assert "ab01" in info.value.message and "ab02" in info.value.message


# ------------------------------------------------------------------ remove
def test_remove_last_key_refused(store, clock):
    only = _add(store, "pw", clock)
    with pytest.raises(UsageError, match="last intact key"):
        remove_key(store, only, current_key_id="none")
    with pytest.raises(UsageError, match="last intact key"):
        remove_key(store, only[:8], current_key_id=only)
    assert _names(store) == ["keys/" + only]


def test_remove_key_in_use_refused(store, clock):
    current = _add(store, "pw", clock)
    _add(store, "other", clock)
    with pytest.raises(UsageError, match="in use by this session"):
        remove_key(store, current[:6], current_key_id=current)
    assert store.exists("keys/" + current)


def test_remove_other_key_by_prefix(store, clock):
    current = _add(store, "pw", clock)
    other = _add(store, "other", clock)
    assert remove_key(store, other[:8], current_key_id=current) == other
    assert _names(store) == ["keys/" + current]
    with pytest.raises(WrongPassword):
        open_master_key(store, "other")


def test_remove_refuses_when_only_damaged_keys_would_remain(store, clock):
    good = _add(store, "pw", clock)
    store.put("keys/" + "e" * 64, b"damaged")
    with pytest.raises(UsageError, match="last intact key"):
        remove_key(store, good, current_key_id="e" * 64)


def test_odd_named_damaged_file_removed_by_exact_name(store, clock):
    current = _add(store, "pw", clock)
    store.put("keys/README", b"hello")
    assert remove_key(store, "README", current_key_id=current) == "README"
    assert _names(store) == ["keys/" + current]


def test_damaged_key_can_be_removed(store, clock):
    current = _add(store, "pw", clock)
    store.put("keys/" + "e" * 64, b"damaged")
    assert remove_key(store, "eee", current_key_id=current) == "e" * 64
    warnings: list[str] = []
    open_master_key(store, "pw", warnings=warnings)
    assert warnings == []


def test_remove_unknown_key(store, clock):
    current = _add(store, "pw", clock)
    with pytest.raises(UsageError, match="no key file"):
        remove_key(store, "zz", current_key_id=current)


# ------------------------------------------------------------------ change password
def _change(store, clock, current, new_password, **kw):
    return change_password(
        store,
        MASTER,
        current,
        new_password,
        entropy=ENTROPY,
        clock=clock,
        hostname="host-c",
        username="carol",
        kdf=KdfParams.fast_for_tests(ENTROPY),
        **kw,
    )


def test_change_password(store, clock):
    old = _add(store, "old", clock)
    keep = _add(store, "keep", clock)
    new = _change(store, clock, old, "new")
    assert new not in (old, keep)
    assert _names(store) == sorted(["keys/" + new, "keys/" + keep])
    assert open_master_key(store, "new") == (MASTER, new)
    assert open_master_key(store, "keep") == (MASTER, keep)
    with pytest.raises(WrongPassword):
        open_master_key(store, "old")
    info = {i.id: i for i in list_keys(store)}[new]
    assert (info.hostname, info.username) == ("host-c", "carol")


def test_change_password_of_only_key(store, clock):
    old = _add(store, "old", clock)
    new = _change(store, clock, old, "new")
    assert _names(store) == ["keys/" + new]
    assert open_master_key(store, "new") == (MASTER, new)


def test_change_password_unknown_current_key(store, clock):
    _add(store, "pw", clock)
    with pytest.raises(UsageError, match="not in this repository"):
        _change(store, clock, "ab" * 32, "new")
    assert len(_names(store)) == 1


def test_change_password_refuses_empty(store, clock):
    old = _add(store, "old", clock)
    with pytest.raises(UsageError, match="empty password"):
        _change(store, clock, old, "")
    assert _names(store) == ["keys/" + old]


def test_change_password_keeps_old_key_if_new_one_does_not_open(store, clock, monkeypatch):
    old = _add(store, "old", clock)
    monkeypatch.setattr(keys, "_try_open", lambda keyfile, secret: None)
    with pytest.raises(KeyFileError, match="old key was kept"):
        _change(store, clock, old, "new")
    monkeypatch.undo()
    assert open_master_key(store, "old") == (MASTER, old)
