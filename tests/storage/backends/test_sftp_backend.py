"""SFTP backend against a real (asyncssh) SSH server on 127.0.0.1: conformance and faults."""

from __future__ import annotations

import backend_services as svc
import pytest
from backend_services import unique
from sftp_server import APPEND_ONLY_USER

from ebas.errors import ObjectNotFound, PermissionDenied, TransientStoreError
from ebas.runtime import FakeClock, FakeEntropy
from ebas.storage.backends.sftp import SFTPStore, UnknownHostKey
from ebas.storage.testing.conformance import StoreConformance, payload
from ebas.storage.wrappers.retry import RetryingStore

svc.require_module("paramiko")


class TestSFTPConformance(StoreConformance):
    @pytest.fixture
    def make_store(self, sftp):
        path = unique("conf")
        return lambda: SFTPStore.from_url(sftp.url(path))


# ---------------------------------------------------------------------------- faults


@pytest.fixture
def sf(sftp):
    store = SFTPStore.from_url(sftp.url(unique("fault")))
    yield store
    store.close()


@pytest.fixture
def relayed(sftp, relay_to):
    relay = relay_to(sftp.port)
    sftp.trust_port(relay.port)
    path = unique("relay")
    through = SFTPStore.from_url(sftp.url(path, port=relay.port, timeout=5))
    direct = SFTPStore.from_url(sftp.url(path))
    yield relay, through, direct
    through.close()
    direct.close()


def test_wrong_key_is_permission_denied(sftp):
    store = SFTPStore.from_url(sftp.url("x", key_file=sftp.stranger_key))
    with pytest.raises(PermissionDenied) as info:
        store.put("config", b"x")
    assert "authentication" in info.value.message and "authorized_keys" in info.value.hint
    assert not info.value.retryable


def test_unknown_host_key_is_refused_unless_accepted(sftp, tmp_path):
    empty = tmp_path / "known_hosts"
    store = SFTPStore.from_url(sftp.url("x", known_hosts=empty))
    with pytest.raises(UnknownHostKey) as info:
        store.stat("anything")
    assert "SHA256:" in info.value.message and "accept_new_host_key" in info.value.hint
    assert isinstance(info.value, PermissionDenied) and not empty.exists()
    accepting = SFTPStore.from_url(sftp.url("x", known_hosts=empty, accept_new_host_key=1))
    accepting.put("hello", b"world")
    assert f"[127.0.0.1]:{sftp.port}" in empty.read_text()
    # now known: a store without accept_new trusts it
    assert SFTPStore.from_url(sftp.url("x", known_hosts=empty)).get("hello") == b"world"


def test_changed_host_key_is_always_refused(sftp, tmp_path):
    wrong = tmp_path / "known_hosts"
    other = (sftp.server.keys["stranger"].with_suffix(".pub")).read_text().split()
    wrong.write_text(f"[127.0.0.1]:{sftp.port} {other[0]} {other[1]}\n")
    store = SFTPStore.from_url(sftp.url("x", known_hosts=wrong, accept_new_host_key=1))
    with pytest.raises(UnknownHostKey) as info:
        store.stat("anything")
    assert "CHANGED" in info.value.message


def test_append_only_user_writes_but_cannot_delete(sftp):
    path = unique("ao")
    store = SFTPStore.from_url(sftp.url(path, user=APPEND_ONLY_USER))
    store.put("data/00/pack", b"pack")
    uid = store.begin_upload("data/01/big")
    store.upload_part(uid, 1, b"part")
    store.complete(uid)  # the server refuses removing the parts: they are left renamed aside
    assert store.get("data/01/big") == b"part" and store.uploads() == []
    with pytest.raises(PermissionDenied) as info:
        store.delete("data/00/pack")
    assert not info.value.retryable
    assert store.get("data/00/pack") == b"pack"
    wrapped = RetryingStore(store, FakeClock(), FakeEntropy(1))
    with pytest.raises(PermissionDenied):
        wrapped.delete("data/00/pack")
    assert wrapped.retries == 0


def test_connection_reset_mid_upload(relayed):
    relay, through, direct = relayed
    data = payload(2 * 1024 * 1024, 4)
    relay.cut_upload_after(500_000)
    with pytest.raises(TransientStoreError):
        through.put("data/aa/pack", data)
    assert not direct.exists("data/aa/pack") and list(direct.list()) == []
    wrapped = RetryingStore(through, FakeClock(), FakeEntropy(1))
    wrapped.put("data/aa/pack", data)  # reconnects
    assert direct.get("data/aa/pack") == data


def test_connection_reset_mid_download(relayed):
    relay, through, direct = relayed
    data = payload(3 * 1024 * 1024, 6)
    direct.put("data/cc/pack", data)
    relay.cut_download_after(1_000_000)
    with pytest.raises(TransientStoreError):
        through.get("data/cc/pack")
    wrapped = RetryingStore(through, FakeClock(), FakeEntropy(1))
    relay.cut_download_after(1_000_000)
    assert wrapped.get("data/cc/pack") == data and wrapped.retries == 1


def test_slow_server_times_out(sftp, relay_to):
    relay = relay_to(sftp.port)
    sftp.trust_port(relay.port)
    path = unique("slow")
    SFTPStore.from_url(sftp.url(path)).put("x", b"data")
    slow = SFTPStore.from_url(sftp.url(path, port=relay.port, timeout=0.5))
    assert slow.get("x") == b"data"  # connected
    relay.slow(2.0)
    with pytest.raises(TransientStoreError):
        slow.get("x")
    relay.reset()


def test_object_changing_between_list_and_get(sf):
    sf.put("snapshots/a", b"first version, longer")
    listed = {i.name: i.size for i in sf.list("snapshots/")}
    sf.put("snapshots/a", b"second")
    assert sf.get("snapshots/a") == b"second" and listed["snapshots/a"] == 21
    sf.delete("snapshots/a")
    with pytest.raises(ObjectNotFound):
        sf.get("snapshots/a")


def test_complete_uses_server_side_copy(sf, sftp):
    uid = sf.begin_upload("data/joined")
    sf.upload_part(uid, 2, payload(300_000, 2))
    sf.upload_part(uid, 1, payload(200_000, 1))
    sf.complete(uid)
    assert sf._copy_data is True  # asyncssh (like OpenSSH 9+) has the copy-data extension
    assert sf.get("data/joined") == payload(200_000, 1) + payload(300_000, 2)
    leftovers = [p.name for p in (sftp.root / sf.root).rglob("*") if p.is_file() and ".ebas-" in str(p)]
    assert leftovers == []


def test_complete_without_copy_data_copies_through_the_client(sf):
    sf._copy_data = False
    uid = sf.begin_upload("data/joined")
    sf.upload_part(uid, 1, b"abc")
    sf.upload_part(uid, 2, b"def")
    sf.complete(uid)
    assert sf.get("data/joined") == b"abcdef"


def test_url_forms():
    rel = SFTPStore.from_url("sftp://u@h:2222/backups/repo?connections=2")
    assert (rel.host, rel.port, rel.user, rel.root) == ("h", 2222, "u", "backups/repo")
    absolute = SFTPStore.from_url("sftp://h//srv/backup")
    assert absolute.root == "/srv/backup" and absolute.port == 22
