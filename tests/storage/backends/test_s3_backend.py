"""S3 backend against a real moto server on 127.0.0.1: conformance, Object Lock, faults."""

from __future__ import annotations

import datetime as dt
import json

import backend_services as svc
import pytest
from backend_services import S3_KEYS, s3_client, s3_url, unique

from ebas.errors import ObjectNotFound, PermissionDenied, StoreError, TransientStoreError
from ebas.runtime import FakeClock, FakeEntropy
from ebas.storage.backends._cloud import ObjectArchived, ObjectLocked
from ebas.storage.testing.conformance import StoreConformance, payload
from ebas.storage.wrappers.retry import RetryingStore

svc.require_module("boto3")
from ebas.storage.backends.s3 import S3Store  # noqa: E402


def open_s3(port, bucket, prefix, **options):
    return S3Store.from_url(s3_url(port, bucket, prefix), **S3_KEYS, **options)


class TestS3Conformance(StoreConformance):
    @pytest.fixture
    def make_store(self, moto, s3_bucket):
        prefix = unique("conf")
        # moto answers 500 ("I/O operation on closed file") when a GET races a PUT of the
        # same key, which real S3 does not: let botocore retry those few (sdk_retries).
        return lambda: open_s3(moto.port, s3_bucket, prefix, sdk_retries=3)


# ---------------------------------------------------------------------------- helpers


SLOW_DOWN = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
             b"<Message>Please reduce your request rate.</Message><RequestId>r1</RequestId></Error>")


@pytest.fixture
def s3(moto, s3_bucket):
    store = open_s3(moto.port, s3_bucket, unique("fault"))
    yield store
    store.close()


@pytest.fixture
def relayed(moto, s3_bucket, relay_to):
    """(relay, store through the relay, direct store) over one prefix."""
    relay = relay_to(moto.port)
    prefix = unique("relay")
    through = open_s3(relay.port, s3_bucket, prefix, read_timeout=5, connect_timeout=2)
    return relay, through, open_s3(moto.port, s3_bucket, prefix)


def retrying(store, attempts=5):
    return RetryingStore(store, FakeClock(), FakeEntropy(3), attempts=attempts)


# ---------------------------------------------------------------------------- credentials and buckets
@pytest.fixture(scope="module")
def moto_iam(service_dir):
    """A second moto server that enforces IAM: unknown keys fail, policies apply."""
    service = svc.start_moto(service_dir, auth_after=4)
    import boto3

    iam = boto3.client("iam", endpoint_url=f"http://127.0.0.1:{service.port}", region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    iam.create_user(UserName="backup")
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
        {"Effect": "Deny", "Action": ["s3:DeleteObject", "s3:DeleteObjectVersion"], "Resource": "*"}]}
    iam.put_user_policy(UserName="backup", PolicyName="append-only", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName="backup")["AccessKey"]
    keys = {"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]}
    s3_client(service.port, **keys).create_bucket(Bucket="append-only")
    yield service, keys
    service.stop()


def test_wrong_credentials_are_permission_denied(moto_iam):
    service, keys = moto_iam
    url = s3_url(service.port, "append-only", "p")
    for bad in ({"access_key_id": "AKIAWRONGWRONGWRONG", "secret_access_key": "x"},
                {"access_key_id": keys["access_key_id"], "secret_access_key": "not-the-secret"}):
        store = S3Store.from_url(url, **bad)
        with pytest.raises(PermissionDenied) as info:
            store.put("config", b"x")
        assert "access denied" in info.value.message and "credentials" in info.value.hint
        with pytest.raises(PermissionDenied):
            list(store.list())


def test_append_only_credentials_write_but_cannot_delete(moto_iam):
    service, keys = moto_iam
    store = S3Store.from_url(s3_url(service.port, "append-only", unique("ao")), **keys)
    store.put("data/00/pack", b"pack bytes")
    uid = store.begin_upload("data/01/big")
    store.upload_part(uid, 1, b"part")
    store.complete(uid)
    assert {i.name for i in store.list()} == {"data/00/pack", "data/01/big"}
    with pytest.raises(PermissionDenied) as info:
        store.delete("data/00/pack")
    assert not info.value.retryable
    assert store.get("data/00/pack") == b"pack bytes"
    # the retry wrapper does not hammer a refusal
    wrapped = retrying(store)
    with pytest.raises(PermissionDenied):
        wrapped.delete("data/00/pack")
    assert wrapped.retries == 0


def test_missing_bucket_is_named(moto):
    store = open_s3(moto.port, "no-such-bucket", "p")
    for call in (lambda: store.put("x", b"1"), lambda: store.get("x"), lambda: store.stat("x"),
                 lambda: list(store.list()), lambda: store.begin_upload("x")):
        with pytest.raises(StoreError) as info:
            call()
        assert not isinstance(info.value, ObjectNotFound)
        assert "bucket 'no-such-bucket' does not exist" in info.value.message


def test_lazy_import_keeps_sdks_out_of_ebas_storage():
    import subprocess
    import sys

    code = ("import sys, ebas.storage, ebas.storage.registry, ebas.api\n"
            "heavy = [m for m in sys.modules if m.split('.')[0] in "
            "('boto3', 'botocore', 'azure', 'google', 'paramiko', 'asyncssh')]\n"
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ---------------------------------------------------------------------------- network faults
def test_connection_reset_mid_upload(relayed):
    relay, through, direct = relayed
    data = payload(2 * 1024 * 1024, 4)
    relay.cut_upload_after(300_000)
    with pytest.raises(TransientStoreError):
        through.put("data/aa/pack", data)
    assert relay.cuts == 1
    assert not direct.exists("data/aa/pack") and list(direct.list()) == []
    wrapped = retrying(through)
    relay.cut_upload_after(300_000)
    wrapped.put("data/aa/pack", data)  # one reset, then a clean retry
    assert wrapped.retries == 1 and relay.cuts == 2
    assert direct.get("data/aa/pack") == data


def test_connection_reset_mid_multipart_part(relayed):
    relay, through, direct = relayed
    data = payload(12 * 1024 * 1024, 5)
    relay.cut_upload_after(7 * 1024 * 1024)  # inside the second 8 MiB... of the first part's request
    with pytest.raises(TransientStoreError):
        with through.open_write("data/bb/stream") as w:
            w.write(data)
    assert not direct.exists("data/bb/stream")
    assert direct.uploads() == []  # the writer aborted its multipart upload


def test_connection_reset_mid_download(relayed):
    relay, through, direct = relayed
    data = payload(3 * 1024 * 1024, 6)
    direct.put("data/cc/pack", data)
    relay.cut_download_after(1_000_000)
    with pytest.raises(TransientStoreError):
        through.get("data/cc/pack")
    wrapped = retrying(through)
    relay.cut_download_after(1_000_000)
    assert wrapped.get("data/cc/pack") == data
    assert wrapped.retries == 1


def test_503_storm_is_retried_with_backoff_then_gives_up(relayed):
    relay, through, direct = relayed
    direct.put("index/1", b"segment")
    relay.storm(1, "503 Slow Down", SLOW_DOWN)
    with pytest.raises(TransientStoreError) as info:
        through.get("index/1")
    assert "SlowDown" in info.value.message
    relay.storm(3, "503 Slow Down", SLOW_DOWN)
    clock = FakeClock()
    wrapped = RetryingStore(through, clock, FakeEntropy(3), attempts=5, base_delay=0.2)
    assert wrapped.get("index/1") == b"segment"
    assert wrapped.retries == 3 and len(clock.sleeps) == 3
    assert all(0 <= d < 0.2 * 2 ** i for i, d in enumerate(clock.sleeps))
    relay.storm(10, "503 Slow Down", SLOW_DOWN)
    gives_up = RetryingStore(through, FakeClock(), FakeEntropy(3), attempts=4)
    with pytest.raises(TransientStoreError) as info:
        gives_up.put("index/2", b"x")
    assert any("gave up after 4 attempts" in note for note in info.value.__notes__)
    assert relay.stormed == 1 + 3 + 4
    relay.reset()


def test_500_internal_error_is_transient(relayed):
    relay, through, direct = relayed
    relay.storm(1, "500 Internal Server Error",
                b"<Error><Code>InternalError</Code><Message>We encountered an internal error.</Message></Error>")
    with pytest.raises(TransientStoreError):
        through.stat("anything")


def test_slow_server_times_out(moto, s3_bucket, relay_to):
    relay = relay_to(moto.port)
    prefix = unique("slow")
    open_s3(moto.port, s3_bucket, prefix).put("x", b"data")
    slow = open_s3(relay.port, s3_bucket, prefix, read_timeout=0.3, connect_timeout=1)
    relay.slow(1.5)
    with pytest.raises(TransientStoreError) as info:
        slow.get("x")
    assert "timeout" in info.value.message.lower() or "timed out" in info.value.message.lower()


def test_object_changing_between_list_and_get(s3):
    s3.put("snapshots/a", b"first version, longer")
    listed = {i.name: i.size for i in s3.list("snapshots/")}
    s3.put("snapshots/a", b"second")  # replaced between list and get
    assert s3.get("snapshots/a") == b"second"  # the whole new version, never a mix
    assert listed["snapshots/a"] == len(b"first version, longer")
    s3.delete("snapshots/a")
    with pytest.raises(ObjectNotFound):
        s3.get("snapshots/a")


# ---------------------------------------------------------------------------- object lock
@pytest.fixture
def locked(moto, s3_lock_bucket):
    def make(**options):
        return open_s3(moto.port, s3_lock_bucket, prefix, **options)
    prefix = unique("lock")
    return make


def test_object_lock_sets_retention_on_every_put(locked):
    clock = FakeClock()
    store = locked(object_lock="governance", lock_days=30, clock=clock)
    store.put("data/00/pack", b"pack")
    with store.open_write("index/1") as w:
        w.write(payload(9 * 1024 * 1024))  # multipart
    uid = store.begin_upload("snapshots/s1")
    store.upload_part(uid, 1, b"snap")
    store.complete(uid)
    expected = dt.datetime.fromtimestamp(clock.now() + 30 * 86400, dt.timezone.utc)
    for name in ("data/00/pack", "index/1", "snapshots/s1"):
        mode, until = store.retention(name)
        assert mode == "GOVERNANCE"
        assert abs((until - expected).total_seconds()) < 5
    store.put("locks/abc", b"lock")  # lock objects are written without retention (lock_skip)
    assert store.retention("locks/abc") == (None, None)
    store.delete("locks/abc")
    assert not store.exists("locks/abc")


def test_delete_of_locked_object_names_the_retain_until_date(locked):
    store = locked(object_lock="compliance", lock_days=2)
    store.put("data/11/pack", b"pack")
    _, until = store.retention("data/11/pack")
    with pytest.raises(ObjectLocked) as info:
        store.delete("data/11/pack")
    assert isinstance(info.value, PermissionDenied) and not info.value.retryable
    assert "COMPLIANCE retention until" in info.value.message
    assert until.astimezone(dt.timezone.utc).date().isoformat() in info.value.message
    assert info.value.retain_until == until
    assert store.get("data/11/pack") == b"pack"  # still there, current version intact


def test_governance_bypass_for_maintenance_credentials(locked):
    writer = locked(object_lock="governance", lock_days=1)
    writer.put("data/22/pack", b"pack")
    with pytest.raises(ObjectLocked):
        writer.delete("data/22/pack")
    maintenance = locked(bypass_governance=1)
    maintenance.delete("data/22/pack")
    assert not maintenance.exists("data/22/pack")
    assert [v for v in s3_versions(maintenance, "data/22/pack")] == []


def s3_versions(store, name):
    key = store.keys.key(name)
    resp = store.client.list_object_versions(Bucket=store.bucket, Prefix=key)
    return [v for v in resp.get("Versions", []) + resp.get("DeleteMarkers", []) if v["Key"] == key]


def test_delete_in_versioned_bucket_removes_every_version(locked):
    store = locked()
    store.put("snapshots/x", b"one")
    store.put("snapshots/x", b"two")
    assert len(s3_versions(store, "snapshots/x")) == 2
    store.delete("snapshots/x")
    assert not store.exists("snapshots/x") and s3_versions(store, "snapshots/x") == []


def test_extend_retention_never_shortens(locked):
    store = locked(object_lock="compliance", lock_days=10)
    store.put("data/33/pack", b"pack")
    _, until = store.retention("data/33/pack")
    later = until + dt.timedelta(days=20)
    assert store.extend_retention("data/33/pack", later) == later
    assert store.retention("data/33/pack") == ("COMPLIANCE", later)
    # an earlier date is a no-op on our side. (moto would accept shortening COMPLIANCE
    # retention, which real S3 refuses: our code never sends a shorter date.)
    assert store.extend_retention("data/33/pack", until) == later
    assert store.retention("data/33/pack")[1] == later


def test_object_lock_options_are_checked(moto, s3_bucket):
    from ebas.errors import UsageError

    with pytest.raises(UsageError):
        open_s3(moto.port, s3_bucket, "p", object_lock="forever", lock_days=1)
    with pytest.raises(UsageError):
        open_s3(moto.port, s3_bucket, "p", object_lock="governance")
    with pytest.raises(UsageError):
        open_s3(moto.port, s3_bucket, "p", no_such_option=1)
    store = S3Store.from_url(s3_url(moto.port, s3_bucket, "p", object_lock="governance", lock_days="7"), **S3_KEYS)
    assert store.lock_mode == "GOVERNANCE" and store.lock_days == 7
    assert store.capabilities.extra["object_lock"] == "GOVERNANCE"


# ---------------------------------------------------------------------------- cold tier
def test_archived_object_must_be_thawed_first(moto, s3_bucket):
    store = open_s3(moto.port, s3_bucket, unique("cold"), storage_class="GLACIER", class_prefixes="data/")
    assert store.capabilities.cold_tier
    store.put("data/44/pack", b"cold pack")
    store.put("index/1", b"hot index")
    assert store.get("index/1") == b"hot index"
    with pytest.raises(ObjectArchived) as info:
        store.get("data/44/pack")
    assert "must be restored (thawed)" in info.value.message and "restore-object" in info.value.hint
    assert info.value.name == "data/44/pack"
    store.thaw("data/44/pack", days=1)
    assert store.get("data/44/pack") == b"cold pack"  # moto restores at once; real S3 takes hours


def test_put_above_threshold_uses_multipart(s3):
    small = S3Store.from_url(s3.url, **S3_KEYS, path_style=1, region="us-east-1", multipart_threshold="5MiB",
                             part_size="5MiB")
    data = payload(11 * 1024 * 1024, 8)
    small.put("big", data)
    assert s3.get("big") == data
    head = s3.client.head_object(Bucket=s3.bucket, Key=s3.keys.key("big"))
    assert head["ETag"].strip('"').endswith("-3")  # a multipart ETag: 3 parts


def test_cli_init_object_lock_sets_retention(moto, s3_lock_bucket, tmp_path):
    """`ebas init --object-lock MODE --lock-days N` against the real server, as a subprocess."""
    import os
    import subprocess
    import sys

    prefix = unique("cli")
    url = s3_url(moto.port, s3_lock_bucket, prefix)
    from clihook import fast_kdf_pythonpath

    env = {**os.environ, "EBAS_PASSWORD": "pw", "PYTHONPATH": fast_kdf_pythonpath(), "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing"}
    cmd = [sys.executable, "-c", "from ebas.cli.app import main; main()"]
    out = subprocess.run(cmd + ["--repo", url, "init", "--object-lock", "compliance", "--lock-days", "3"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "object_lock=compliance&lock_days=3" in out.stdout
    store = open_s3(moto.port, s3_lock_bucket, prefix)
    for name in ("config", *[i.name for i in store.list("keys/")]):
        mode, until = store.retention(name)
        assert mode == "COMPLIANCE" and until > dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=2)
    bad = subprocess.run(cmd + ["--repo", str(tmp_path / "r"), "init", "--object-lock", "governance",
                                "--lock-days", "3"], env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "needs an s3:// repository" in bad.stderr
    half = subprocess.run(cmd + ["--repo", url, "init", "--object-lock", "governance"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert half.returncode == 2 and "go together" in half.stderr


def test_repository_records_object_lock_and_reapplies_it_on_open(locked):
    """init with object lock records it in the config; a later client that opens the
    repository without the URL options still writes every object with retention."""
    from ebas.crypto.kdf import KdfParams
    from ebas.repo.repository import Repository
    from ebas.runtime import SYSTEM_ENTROPY

    repo = Repository.init(locked(object_lock="compliance", lock_days=3), "pw",
                           kdf=KdfParams.fast_for_tests(SYSTEM_ENTROPY))
    assert repo.config.object_lock == {"mode": "compliance", "days": 3}
    plain = locked()
    assert plain.object_lock() is None
    again = Repository.open(plain, "pw")
    assert plain.object_lock() == ("compliance", 3)
    with again.session() as ses:
        ses.put_blob(0, b"x" * 1000)
        ses.flush()
    pack = next(i.name for i in plain.list("data/"))
    mode, _until = plain.retention(pack)
    assert mode == "COMPLIANCE"
