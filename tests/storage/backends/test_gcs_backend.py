"""GCS backend against a real gcp-storage-emulator on 127.0.0.1: conformance and faults."""

from __future__ import annotations

import backend_services as svc
import pytest
from backend_services import gcs_url, unique

from ebas.errors import ObjectNotFound, PermissionDenied, StoreError, TransientStoreError
from ebas.runtime import FakeClock, FakeEntropy
from ebas.storage.testing.conformance import StoreConformance, payload
from ebas.storage.wrappers.retry import RetryingStore

svc.require_module("google.cloud.storage")
from ebas.storage.backends.gcs import GCSStore  # noqa: E402


def open_gcs(port, bucket, prefix, **options):
    return GCSStore.from_url(gcs_url(port, bucket, prefix), **options)


class TestGCSConformance(StoreConformance):
    @pytest.fixture
    def make_store(self, gcs, gcs_bucket):
        prefix = unique("conf")
        return lambda: open_gcs(gcs.port, gcs_bucket, prefix)


# ---------------------------------------------------------------------------- faults

BACKEND_ERROR = b'{"error": {"code": 503, "message": "Backend Error", "errors": [{"reason": "backendError"}]}}'


@pytest.fixture
def gs(gcs, gcs_bucket):
    store = open_gcs(gcs.port, gcs_bucket, unique("fault"))
    yield store
    store.close()


@pytest.fixture
def relayed(gcs, gcs_bucket, relay_to):
    relay = relay_to(gcs.port)
    prefix = unique("relay")
    through = open_gcs(relay.port, gcs_bucket, prefix, read_timeout=5, connect_timeout=2)
    return relay, through, open_gcs(gcs.port, gcs_bucket, prefix)


def retrying(store, attempts=5):
    return RetryingStore(store, FakeClock(), FakeEntropy(3), attempts=attempts)


def test_refused_credentials_map_to_permission_denied(relayed):
    """The emulator accepts any credentials, so the refusal comes from the relay: this
    proves our mapping of 401/403, not GCS's own checks (see docs/backends.md)."""
    relay, through, _ = relayed
    relay.storm(1, "403 Forbidden", b'{"error": {"code": 403, "message": "denied"}}',
                content_type="application/json")
    with pytest.raises(PermissionDenied):
        through.put("config", b"x")
    # (a 401 makes google-auth refresh the credentials and send the request again)
    relay.storm(1, "403 Forbidden", b'{"error": {"code": 403, "message": "no delete"}}',
                content_type="application/json")
    wrapped = retrying(through)
    with pytest.raises(PermissionDenied):
        wrapped.delete("config")
    assert wrapped.retries == 0


def test_missing_bucket_is_named(gcs):
    store = open_gcs(gcs.port, "no-such-bucket", "p")
    for call in (lambda: store.put("x", b"1"), lambda: store.get("x"), lambda: list(store.list()),
                 lambda: store.begin_upload("x")):
        with pytest.raises(StoreError) as info:
            call()
        assert not isinstance(info.value, ObjectNotFound)
        assert "bucket 'no-such-bucket' does not exist" in info.value.message


def test_connection_reset_mid_upload(relayed):
    relay, through, direct = relayed
    data = payload(2 * 1024 * 1024, 4)
    relay.cut_upload_after(300_000)
    with pytest.raises(TransientStoreError):
        through.put("data/aa/pack", data)
    assert not direct.exists("data/aa/pack") and list(direct.list()) == []
    wrapped = retrying(through)
    relay.cut_upload_after(300_000)
    wrapped.put("data/aa/pack", data)
    assert wrapped.retries == 1 and direct.get("data/aa/pack") == data


def test_connection_reset_mid_resumable_session(relayed):
    relay, through, direct = relayed
    relay.cut_upload_after(12 * 1024 * 1024, across=True)  # in the second 8 MiB chunk of the session
    with pytest.raises(TransientStoreError):
        with through.open_write("data/bb/stream") as w:
            w.write(payload(20 * 1024 * 1024, 5))
    assert not direct.exists("data/bb/stream") and list(direct.list()) == []


def test_connection_reset_mid_download(relayed):
    relay, through, direct = relayed
    data = payload(3 * 1024 * 1024, 6)
    direct.put("data/cc/pack", data)
    relay.cut_download_after(1_000_000)
    with pytest.raises(TransientStoreError):
        through.get("data/cc/pack")
    wrapped = retrying(through)
    relay.cut_download_after(1_000_000)
    assert wrapped.get("data/cc/pack") == data and wrapped.retries == 1


def test_503_storm_is_retried_then_gives_up(relayed, gcs, gcs_bucket):
    relay, through, direct = relayed
    direct.put("index/1", b"segment")
    relay.storm(3, "503 Service Unavailable", BACKEND_ERROR, content_type="application/json")
    clock = FakeClock()
    fresh = open_gcs(relay.port, gcs_bucket, through.keys.prefix)
    wrapped = RetryingStore(fresh, clock, FakeEntropy(3), attempts=5)
    assert wrapped.get("index/1") == b"segment"
    assert wrapped.retries == 3 and len(clock.sleeps) == 3
    relay.storm(10, "503 Service Unavailable", BACKEND_ERROR, content_type="application/json")
    fresh = open_gcs(relay.port, gcs_bucket, through.keys.prefix)
    with pytest.raises(TransientStoreError):
        RetryingStore(fresh, FakeClock(), FakeEntropy(3), attempts=3).put("index/2", b"x")
    assert not direct.exists("index/2")
    relay.reset()


def test_slow_server_times_out(gcs, gcs_bucket, relay_to):
    relay = relay_to(gcs.port)
    prefix = unique("slow")
    open_gcs(gcs.port, gcs_bucket, prefix).put("x", b"data")
    slow = open_gcs(relay.port, gcs_bucket, prefix, read_timeout=0.3, connect_timeout=1)
    relay.slow(1.5)
    with pytest.raises(TransientStoreError):
        slow.get("x")


def test_object_changing_between_list_and_get(gs):
    gs.put("snapshots/a", b"first version, longer")
    listed = {i.name: i.size for i in gs.list("snapshots/")}
    gs.put("snapshots/a", b"second")
    assert gs.get("snapshots/a") == b"second" and listed["snapshots/a"] == 21
    gs.delete("snapshots/a")
    with pytest.raises(ObjectNotFound):
        gs.get("snapshots/a")


def test_compose_in_rounds_for_many_parts(gs):
    uid = gs.begin_upload("data/many")
    parts = {n: payload(1000 + n, n) for n in range(1, 71)}  # 70 parts: 3 compose rounds
    for n in sorted(parts, reverse=True):
        gs.upload_part(uid, n, parts[n])
    assert [p.number for p in gs.parts(uid)] == list(range(1, 71))
    gs.complete(uid)
    assert gs.get("data/many") == b"".join(parts[n] for n in range(1, 71))
    assert gs.uploads() == [] and [i.name for i in gs.list()] == ["data/many"]
    leftovers = list(gs.client.list_blobs(gs.bucket, prefix=gs.keys.internal(".ebas-")))
    assert leftovers == []


def test_stream_abort_cancels_the_session(gs):
    w = gs.open_write("data/stream")
    w.write(payload(9 * 1024 * 1024, 2))  # one chunk sent through a resumable session
    w.abort()
    assert not gs.exists("data/stream") and list(gs.list()) == []
