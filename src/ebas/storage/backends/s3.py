"""Amazon S3 and S3-compatible object storage (MinIO, Ceph RGW, Wasabi, ...) via boto3.

URL: ``s3://BUCKET[/PREFIX][?option=value&...]``. Options (URL query or keywords):

``endpoint``       URL of an S3-compatible service (default: AWS for ``region``)
``region``         signing region (default: from the AWS chain, else ``us-east-1``)
``path_style``     ``1`` for path-style addressing (MinIO, moto); default virtual-host
``profile``        a named profile from ``~/.aws/config``
``storage_class``  ``STANDARD``, ``STANDARD_IA``, ``INTELLIGENT_TIERING``, ``GLACIER_IR``,
                   ``GLACIER``, ``DEEP_ARCHIVE``, ... for the objects written
``class_prefixes`` comma-separated name prefixes the storage class applies to (default:
                   all; ``data/`` keeps config, keys, index and snapshots readable)
``object_lock``    ``governance`` or ``compliance``: every put sets retention
``lock_days``      retention length in days for ``object_lock`` (required with it)
``lock_skip``      comma-separated name prefixes written without retention
                   (default ``locks/``: lock objects must stay deletable)
``bypass_governance``  ``1`` lets deletes bypass GOVERNANCE retention (maintenance keys)
``part_size``      multipart part size for streams (default 8MiB, at least 5MiB)
``connect_timeout``, ``read_timeout``  seconds or a duration such as 2min (default 10 and 60)
``max_connections``    connection pool size (default 16)
``sdk_retries``    retries botocore makes itself (default 0: ebas's RetryingStore retries)

Keyword-only: ``access_key_id``, ``secret_access_key``, ``session_token`` (otherwise
the standard AWS chain: environment, shared files, profile, container/instance role),
``clock`` and ``entropy``.

Resumable uploads are S3 multipart uploads. The upload id handed out is
``<base64url(name)>.<S3 UploadId>``, so any process can find the parts with
``list_parts`` and the pending uploads with ``list_multipart_uploads``. In a bucket
with versioning (always so with Object Lock) ``delete`` removes every version of the
name, so an object really disappears; a version under retention makes it fail with
:class:`ObjectLocked` naming the retain-until date.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import threading
from typing import Iterator

import boto3
import botocore.exceptions as bex
from botocore.config import Config

from ebas.errors import (
    EbasError,
    InvalidRange,
    ObjectNotFound,
    PermissionDenied,
    StoreError,
    TransientStoreError,
    UsageError,
)
from ebas.runtime import SYSTEM_CLOCK, SYSTEM_ENTROPY, Clock, Entropy
from ebas.storage.backends._cloud import (
    KeyMap,
    MiB,
    ObjectArchived,
    ObjectLocked,
    Options,
    PartedWriter,
    as_bool,
    as_float,
    as_prefixes,
    as_seconds,
    as_size,
    split_url,
    utc_ns,
)
from ebas.storage.base import (
    Capabilities,
    ObjectInfo,
    ObjectWriter,
    PartInfo,
    PendingUpload,
    Store,
    check_part_number,
    range_bounds,
)
from ebas.storage.redact import redact_url

MIN_PART = 5 * MiB
COLD_CLASSES = {"GLACIER", "DEEP_ARCHIVE"}
LOCK_MODES = {"governance": "GOVERNANCE", "compliance": "COMPLIANCE"}
_NOT_FOUND = {"NoSuchKey", "404", "NotFound", "NoSuchVersion"}
_DENIED = {"AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled",
           "AccountProblem", "InvalidToken", "ExpiredToken", "InvalidSecurity", "RequestTimeTooSkewed"}
_TRANSIENT = {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "Throttling",
              "ThrottlingException", "RequestLimitExceeded", "TooManyRequests", "503", "500",
              "OperationAborted", "BadDigest", "IncompleteBody", "XAmzContentSHA256Mismatch"}

OPTIONS = {
    "endpoint": (str, None), "region": (str, None), "path_style": (as_bool, False),
    "profile": (str, None), "storage_class": (lambda v: str(v).upper(), None),
    "class_prefixes": (as_prefixes, ("",)),
    "object_lock": (lambda v: str(v).lower(), None), "lock_days": (as_float, None),
    "lock_skip": (as_prefixes, ("locks/", "prune/")), "bypass_governance": (as_bool, False),
    "part_size": (as_size, 8 * MiB), "multipart_threshold": (as_size, 64 * MiB),
    "connect_timeout": (as_seconds, 10.0), "read_timeout": (as_seconds, 60.0),
    "max_connections": (int, 16), "sdk_retries": (int, 0),
    "access_key_id": (str, None), "secret_access_key": (str, None), "session_token": (str, None),
    "clock": (lambda v: v, None), "entropy": (lambda v: v, None),
}


class S3Store(Store):
    """Objects in ``bucket`` under ``prefix`` (see the module docstring for options)."""

    def __init__(self, bucket: str, prefix: str = "", **options):
        if not bucket:
            raise UsageError("an S3 URL needs a bucket: s3://BUCKET/PREFIX")
        opts = Options("s3", OPTIONS, {}, options)
        self.bucket = bucket
        self.keys = KeyMap(prefix)
        self.clock: Clock = opts["clock"] or SYSTEM_CLOCK
        self.entropy: Entropy = opts["entropy"] or SYSTEM_ENTROPY
        self.storage_class = opts["storage_class"]
        self.class_prefixes = opts["class_prefixes"]
        self.part_size = opts["part_size"]
        self.multipart_threshold = max(opts["multipart_threshold"], self.part_size)
        if self.part_size < MIN_PART:
            raise UsageError(f"S3 part_size must be at least 5MiB, got {self.part_size}")
        self.lock_mode = None
        self.lock_days = opts["lock_days"]
        if opts["object_lock"] not in (None, "", "off", "none"):
            if opts["object_lock"] not in LOCK_MODES:
                raise UsageError(f"object_lock must be governance or compliance, got {opts['object_lock']!r}")
            if not self.lock_days or self.lock_days <= 0:
                raise UsageError("object_lock needs lock_days=N (N > 0)")
            self.lock_mode = LOCK_MODES[opts["object_lock"]]
        self.lock_skip = opts["lock_skip"]
        self.bypass_governance = opts["bypass_governance"]
        endpoint = opts["endpoint"]
        self.url = redact_url(f"s3://{bucket}/{self.keys.prefix}" + (f"?endpoint={endpoint}" if endpoint else ""))
        self.capabilities = Capabilities(
            min_part_size=MIN_PART, max_part_size=5 * 1024 * MiB,
            parallel_writes=opts["max_connections"],
            cold_tier=self.storage_class in COLD_CLASSES,
            extra={"kind": "s3", "object_lock": self.lock_mode, "storage_class": self.storage_class,
                   "bypass_governance": self.bypass_governance})
        session = boto3.session.Session(
            profile_name=opts["profile"], aws_access_key_id=opts["access_key_id"],
            aws_secret_access_key=opts["secret_access_key"], aws_session_token=opts["session_token"])
        config = Config(
            s3={"addressing_style": "path" if opts["path_style"] else "auto"},
            connect_timeout=opts["connect_timeout"], read_timeout=opts["read_timeout"],
            retries={"total_max_attempts": 1 + max(0, opts["sdk_retries"]), "mode": "standard"},
            max_pool_connections=opts["max_connections"])
        self.client = session.client("s3", endpoint_url=endpoint,
                                     region_name=opts["region"] or session.region_name or "us-east-1",
                                     config=config)
        self._bucket_ok = False
        self._versioned: bool | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, **options) -> "S3Store":
        """Open ``s3://bucket/prefix?options`` (keyword options win over the query)."""
        bucket, prefix, query, _ = split_url(url, "s3")
        return cls(bucket, prefix, **{**query, **options})

    # ------------------------------------------------------------ errors
    def _error(self, exc: BaseException, name: str, op: str) -> EbasError:
        """Translate a boto3/botocore exception raised by ``op`` on ``name``."""
        what = f"S3 {op} {name!r} in {self.url}"
        if isinstance(exc, bex.ClientError):
            err = exc.response.get("Error", {})
            code = str(err.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            message = err.get("Message", "") or str(exc)
            if code == "NoSuchBucket" or (code in _NOT_FOUND and self._bucket_missing()):
                return StoreError(f"{what}: bucket {self.bucket!r} does not exist",
                                  hint="create the bucket first, or check the bucket name and region")
            if code in _NOT_FOUND:
                return ObjectNotFound(name, store=self.url)
            if code == "NoSuchUpload":
                return ObjectNotFound(f"upload {name}", store=self.url,
                                      hint="the upload was completed, aborted or never begun")
            if code == "InvalidObjectState":
                return ObjectArchived(
                    f"{what}: the object is in the {err.get('StorageClass', 'archive')} storage class "
                    "and must be restored (thawed) before it can be read", name=name,
                    hint=f"restore it first (S3 RestoreObject, e.g. 'aws s3api restore-object --bucket "
                         f"{self.bucket} --key {self.keys.root}{name} --restore-request Days=7'), "
                         "wait for the restore to finish, then retry")
            if code in _DENIED or status == 403:
                return PermissionDenied(f"{what}: access denied ({code}: {message})",
                                        hint="check the S3 credentials (AWS_ACCESS_KEY_ID / profile / role) "
                                             "and the bucket policy for this operation")
            if code in _TRANSIENT or status >= 500 or status == 429:
                return TransientStoreError(f"{what}: {code or status} {message} (temporary)")
            if code == "InvalidRange":
                return InvalidRange(f"{what}: {message}")
            if code == "EntityTooSmall":
                return UsageError(f"{what}: a part other than the last is smaller than 5 MiB")
            return StoreError(f"{what}: {code or status}: {message}")
        if isinstance(exc, (bex.NoCredentialsError, bex.PartialCredentialsError)):
            return PermissionDenied(f"{what}: no usable AWS credentials: {exc}",
                                    hint="set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run "
                                         "with an instance/container role")
        if isinstance(exc, (bex.ConnectionError, bex.HTTPClientError, bex.IncompleteReadError,
                            bex.ResponseStreamingError, OSError)):
            return TransientStoreError(f"{what}: connection problem (temporary): {exc}")
        if isinstance(exc, bex.BotoCoreError):
            return StoreError(f"{what}: {exc}")
        if isinstance(exc, EbasError):
            return exc
        return StoreError(f"{what}: unexpected {type(exc).__name__}: {exc}")

    def _call(self, op: str, name: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except EbasError:
            raise
        except Exception as exc:  # noqa: BLE001 - translated at the boundary
            raise self._error(exc, name, op) from exc

    def _bucket_missing(self) -> bool:
        """True if the bucket does not exist (asked once per store; a 404 is ambiguous)."""
        if self._bucket_ok:
            return False
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except bex.ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            return code in ("404", "NoSuchBucket", "NotFound")
        except Exception:  # noqa: BLE001 - cannot tell; let the caller report the original error
            return False
        self._bucket_ok = True
        return False

    # ------------------------------------------------------------ object lock
    def _lock_args(self, name: str) -> dict:
        args = {}
        if self.storage_class and name.startswith(self.class_prefixes):
            args["StorageClass"] = self.storage_class
        if self.lock_mode and not name.startswith(self.lock_skip):
            until = dt.datetime.fromtimestamp(self.clock.now() + self.lock_days * 86400, dt.timezone.utc)
            args["ObjectLockMode"] = self.lock_mode
            args["ObjectLockRetainUntilDate"] = until.replace(microsecond=0) + dt.timedelta(seconds=1)
        return args

    def _ensure_retention(self, name: str) -> None:
        """After a multipart upload: make sure the object carries the store's retention.

        S3 applies the lock given to CreateMultipartUpload; some S3-compatible servers
        (and moto) do not, so it is checked and set (never shortened) explicitly.
        """
        args = self._lock_args(name)
        if "ObjectLockRetainUntilDate" in args:
            self.extend_retention(name, args["ObjectLockRetainUntilDate"] - dt.timedelta(seconds=2))

    def retention(self, name: str) -> tuple[str | None, dt.datetime | None]:
        """``(mode, retain_until)`` of the current version of ``name`` (None, None if unlocked)."""
        head = self._call("retention", name, self.client.head_object, Bucket=self.bucket, Key=self.keys.key(name))
        return head.get("ObjectLockMode"), head.get("ObjectLockRetainUntilDate")

    def object_lock(self) -> tuple[str, float] | None:
        """``(mode, days)`` set on every write, or None."""
        return (self.lock_mode.lower(), self.lock_days) if self.lock_mode else None

    def set_object_lock(self, mode: str, days: float) -> None:
        """Set retention ``mode`` for ``days`` days on every later write (from the repo config)."""
        if mode not in LOCK_MODES or not days or days <= 0:
            raise UsageError(f"invalid object lock {mode!r} for {days!r} days")
        self.lock_mode, self.lock_days = LOCK_MODES[mode], float(days)

    def extend_retention(self, name: str, until: dt.datetime) -> dt.datetime:
        """Make ``name`` retained until at least ``until``; never shortens. Returns the date in force.

        Uses the object's current mode, or the store's ``object_lock`` mode if it has none.
        """
        if until.tzinfo is None:
            until = until.replace(tzinfo=dt.timezone.utc)
        key = self.keys.key(name)
        head = self._call("extend_retention", name, self.client.head_object, Bucket=self.bucket, Key=key)
        current = head.get("ObjectLockRetainUntilDate")
        if current is not None and current >= until:
            return current
        mode = head.get("ObjectLockMode") or self.lock_mode
        if not mode:
            raise UsageError(f"cannot set retention on {name!r}: no object_lock mode on the object or store")
        args = {"Bucket": self.bucket, "Key": key,
                "Retention": {"Mode": mode, "RetainUntilDate": until}}
        if head.get("VersionId") not in (None, "null"):
            args["VersionId"] = head["VersionId"]
        self._call("extend_retention", name, self.client.put_object_retention, **args)
        return until

    def thaw(self, name: str, days: int = 7, tier: str = "Standard") -> None:
        """Ask S3 to restore an archived object for ``days`` days (it becomes readable later)."""
        self._call("thaw", name, self.client.restore_object, Bucket=self.bucket, Key=self.keys.key(name),
                   RestoreRequest={"Days": days, "GlacierJobParameters": {"Tier": tier}})

    # ------------------------------------------------------------ objects
    def put(self, name: str, data: bytes) -> None:
        """One PutObject (atomic); above ``multipart_threshold`` a multipart upload."""
        key = self.keys.key(name)
        data = bytes(data)
        if len(data) > self.multipart_threshold:
            with self.open_write(name) as writer:
                writer.write(data)
            return
        self._call("put", name, self.client.put_object, Bucket=self.bucket, Key=key, Body=data,
                   **self._lock_args(name))

    def open_write(self, name: str) -> ObjectWriter:
        """A stream: one PutObject if small, else a multipart upload completed on commit."""
        key = self.keys.key(name)

        def put_small(data: bytes) -> None:
            self._call("put", name, self.client.put_object, Bucket=self.bucket, Key=key, Body=data,
                       **self._lock_args(name))

        def start() -> dict:
            resp = self._call("open_write", name, self.client.create_multipart_upload,
                              Bucket=self.bucket, Key=key, **self._lock_args(name))
            return {"UploadId": resp["UploadId"], "Parts": []}

        def send(state: dict, number: int, data: bytes) -> None:
            resp = self._call("write", name, self.client.upload_part, Bucket=self.bucket, Key=key,
                              UploadId=state["UploadId"], PartNumber=number, Body=data)
            state["Parts"].append({"PartNumber": number, "ETag": resp["ETag"]})

        def finish(state: dict, count: int) -> None:
            self._call("commit", name, self.client.complete_multipart_upload, Bucket=self.bucket, Key=key,
                       UploadId=state["UploadId"], MultipartUpload={"Parts": state["Parts"]})
            self._ensure_retention(name)

        def cancel(state: dict) -> None:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=state["UploadId"])

        return PartedWriter(name, self.part_size, put_small=put_small, start=start, send=send,
                            finish=finish, cancel=cancel)

    def get(self, name: str, start: int = 0, length: int | None = None) -> bytes:
        """One GetObject (ranged when asked); a short body is a transient error."""
        key = self.keys.key(name)
        if start < 0 or (length is not None and length < 0):
            range_bounds(name, 0, start, length)  # raises UsageError
        if length == 0:
            range_bounds(name, self.stat(name).size, start, 0)
            return b""
        args = {"Bucket": self.bucket, "Key": key}
        if start or length is not None:
            last = "" if length is None else str(start + length - 1)
            args["Range"] = f"bytes={start}-{last}"
        try:
            resp = self._call("get", name, self.client.get_object, **args)
        except InvalidRange:
            range_bounds(name, self.stat(name).size, start, length)  # past the end: InvalidRange
            return b""  # start == size: nothing to read
        try:
            body = resp["Body"]
            data = body.read()
        except Exception as exc:  # noqa: BLE001 - a cut stream
            raise self._error(exc, name, "get (reading the body)") from exc
        finally:
            resp["Body"].close()
        if len(data) != resp.get("ContentLength", len(data)):
            raise TransientStoreError(f"S3 get {name!r} in {self.url}: body cut short "
                                      f"({len(data)} of {resp['ContentLength']} bytes)")
        return data

    def stat(self, name: str) -> ObjectInfo:
        """HeadObject: size and last-modified time."""
        head = self._call("stat", name, self.client.head_object, Bucket=self.bucket, Key=self.keys.key(name))
        return ObjectInfo(name, head["ContentLength"], utc_ns(head.get("LastModified")))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """ListObjectsV2 pages, read lazily; bookkeeping keys are hidden."""
        lp = self.keys.list_prefix(prefix)
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=lp)

        def gen() -> Iterator[ObjectInfo]:
            iterator = iter(pages)
            while True:
                page = self._call("list", prefix, next, iterator, None)
                if page is None:
                    return
                for item in page.get("Contents", ()):
                    name = self.keys.name(item["Key"])
                    if name is not None:
                        yield ObjectInfo(name, item["Size"], utc_ns(item.get("LastModified")))
        return gen()

    def delete(self, name: str) -> None:
        """Remove ``name`` (every version of it in a versioned bucket)."""
        key = self.keys.key(name)
        head = self._call("delete", name, self.client.head_object, Bucket=self.bucket, Key=key)
        if head.get("VersionId") in (None, "null"):
            self._call("delete", name, self.client.delete_object, Bucket=self.bucket, Key=key)
            return
        extra = {"BypassGovernanceRetention": True} if self.bypass_governance else {}
        pages = self.client.get_paginator("list_object_versions").paginate(Bucket=self.bucket, Prefix=key)
        versions = []
        for page in self._call("delete", name, list, pages):
            versions += [v for v in [*page.get("Versions", ()), *page.get("DeleteMarkers", ())] if v["Key"] == key]
        # oldest first: if a locked version stops us, the newest (current) one is still intact
        for version in sorted(versions, key=lambda v: (v.get("IsLatest", False), v["LastModified"])):
            try:
                self.client.delete_object(Bucket=self.bucket, Key=key, VersionId=version["VersionId"], **extra)
            except bex.ClientError as exc:
                err = self._error(exc, name, "delete")
                if isinstance(err, PermissionDenied):
                    raise self._locked(name, key, version["VersionId"], err) from exc
                raise err from exc
            except Exception as exc:  # noqa: BLE001
                raise self._error(exc, name, "delete") from exc

    def _locked(self, name: str, key: str, version_id: str, denied: PermissionDenied) -> PermissionDenied:
        """A refused version delete: name the retention if that is the reason."""
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key, VersionId=version_id)
        except Exception:  # noqa: BLE001 - cannot tell more than "denied"
            return denied
        until = head.get("ObjectLockRetainUntilDate")
        hold = head.get("ObjectLockLegalHoldStatus") == "ON"
        now = dt.datetime.fromtimestamp(self.clock.now(), dt.timezone.utc)
        if hold:
            return ObjectLocked(f"cannot delete {name!r} in {self.url}: it is under a legal hold",
                                name=name, retain_until=until)
        if until is not None and until > now:
            mode = head.get("ObjectLockMode", "")
            return ObjectLocked(f"cannot delete {name!r} in {self.url}: {mode} retention until "
                                f"{until.astimezone(dt.timezone.utc).isoformat()}", name=name, retain_until=until)
        return denied

    # ------------------------------------------------------------ resumable uploads
    def _upload_id(self, name: str, s3_id: str) -> str:
        return base64.urlsafe_b64encode(name.encode()).decode().rstrip("=") + "." + s3_id

    def _parse_upload(self, upload_id) -> tuple[str, str, str]:
        """``(name, key, S3 UploadId)`` or ObjectNotFound for a malformed id."""
        try:
            enc, sep, s3_id = upload_id.partition(".")
            name = base64.urlsafe_b64decode(enc + "=" * (-len(enc) % 4)).decode()
            if not sep or not s3_id:
                raise ValueError("no separator")
            return name, self.keys.key(name), s3_id
        except (AttributeError, ValueError, binascii.Error, UnicodeDecodeError, UsageError):
            raise ObjectNotFound(f"upload {upload_id}", store=self.url,
                                 hint="the upload was completed, aborted or never begun") from None

    def begin_upload(self, name: str) -> str:
        """CreateMultipartUpload (with the store's storage class and retention)."""
        key = self.keys.key(name)
        resp = self._call("begin_upload", name, self.client.create_multipart_upload, Bucket=self.bucket,
                          Key=key, **self._lock_args(name))
        return self._upload_id(name, resp["UploadId"])

    def upload_part(self, upload_id: str, number: int, data: bytes) -> PartInfo:
        """UploadPart; parts but the last must be at least 5 MiB (checked by S3 on complete)."""
        check_part_number(number)
        name, key, s3_id = self._parse_upload(upload_id)
        data = bytes(data)
        try:
            resp = self._call("upload_part", upload_id, self.client.upload_part, Bucket=self.bucket, Key=key,
                              UploadId=s3_id, PartNumber=number, Body=data)
        except TransientStoreError:
            # moto (and a real S3 racing an abort) can answer 500 for a part of a gone upload
            self._call("upload_part", upload_id, self.client.list_parts, Bucket=self.bucket, Key=key,
                       UploadId=s3_id, MaxParts=1)
            raise
        return PartInfo(number, len(data), resp["ETag"].strip('"'))

    def _list_parts(self, upload_id: str) -> list[dict]:
        name, key, s3_id = self._parse_upload(upload_id)
        pages = self.client.get_paginator("list_parts").paginate(Bucket=self.bucket, Key=key, UploadId=s3_id)
        out: list[dict] = []
        for page in self._call("parts", upload_id, list, pages):
            out += page.get("Parts", ())
        return sorted(out, key=lambda p: p["PartNumber"])

    def parts(self, upload_id: str) -> list[PartInfo]:
        """ListParts, from any process."""
        return [PartInfo(p["PartNumber"], p["Size"], p["ETag"].strip('"')) for p in self._list_parts(upload_id)]

    def complete(self, upload_id: str) -> None:
        """CompleteMultipartUpload with every listed part (an empty upload becomes an empty object)."""
        name, key, s3_id = self._parse_upload(upload_id)
        parts = self._list_parts(upload_id)
        if not parts:  # S3 refuses to complete without parts
            self.put(name, b"")
            self.abort(upload_id)
            return
        self._call("complete", upload_id, self.client.complete_multipart_upload, Bucket=self.bucket, Key=key,
                   UploadId=s3_id,
                   MultipartUpload={"Parts": [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]} for p in parts]})
        self._ensure_retention(name)

    def abort(self, upload_id: str) -> None:
        """AbortMultipartUpload."""
        name, key, s3_id = self._parse_upload(upload_id)
        self._call("abort", upload_id, self.client.abort_multipart_upload, Bucket=self.bucket, Key=key,
                   UploadId=s3_id)

    def uploads(self, prefix: str = "") -> list[PendingUpload]:
        """ListMultipartUploads under the prefix."""
        lp = self.keys.list_prefix(prefix)
        pages = self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=lp)
        found = []
        for page in self._call("uploads", prefix, list, pages):
            for item in page.get("Uploads", ()):
                name = self.keys.name(item["Key"])
                if name is not None:
                    found.append(PendingUpload(name, self._upload_id(name, item["UploadId"])))
        return found

    def close(self) -> None:
        """Close the HTTP connection pool."""
        try:
            self.client.close()
        except Exception:  # noqa: BLE001 - closing is best effort
            pass


__all__ = ["S3Store"]
