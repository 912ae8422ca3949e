"""Google Cloud Storage via google-cloud-storage.

URL: ``gs://BUCKET[/PREFIX][?option=value&...]`` (``gcs://`` is accepted too). Options:

``endpoint``        API endpoint (an emulator: ``http://127.0.0.1:9023``; also taken
                    from ``STORAGE_EMULATOR_HOST``)
``project``         project id (default: from the credentials)
``anonymous``       ``1``: no credentials (emulators, public buckets)
``credentials_file``  a service-account JSON key (default: the standard Google chain:
                    ``GOOGLE_APPLICATION_CREDENTIALS``, gcloud login, metadata server)
``storage_class``   ``STANDARD``, ``NEARLINE``, ``COLDLINE`` or ``ARCHIVE`` for objects written
``class_prefixes``  comma-separated name prefixes the class applies to (default: all)
``chunk_size``      resumable-session chunk for streams (default 8MiB, a multiple of 256KiB)
``connect_timeout``, ``read_timeout``  seconds or a duration such as 2min (default 10 and 60)

Streams (``open_write``) above one chunk use a GCS resumable upload session: chunks
go out in order as they fill, the final one is marked with the total size, which
publishes the object atomically; ``abort`` cancels the session.

Resumable uploads (``begin_upload`` ... ``complete``) must accept parts in any order
and replace a part sent twice, which a resumable session cannot (it only appends, in
order, in 256 KiB units). So each part is a hidden object
``PREFIX/.ebas-parts/<id>/<part:05d>`` and a small journal object
``PREFIX/.ebas-uploads/<id>`` names the target; ``parts`` lists them from any process
and ``complete`` joins them server-side with ``compose`` (32 sources per call, in
rounds), so no byte travels twice. Nothing lives in a local file: a new process on
another host resumes with bucket access alone.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import http.client
import os
import re
from typing import Iterator

import google.api_core.exceptions as gex
import google.auth.exceptions as gauth
import requests
import urllib3
from google.cloud import storage

from ebas.errors import (
    EbasError,
    InvalidRange,
    ObjectNotFound,
    PermissionDenied,
    StoreError,
    TransientStoreError,
    UsageError,
)
from ebas.runtime import SYSTEM_ENTROPY, Entropy
from ebas.storage.backends._cloud import (
    KeyMap,
    MiB,
    Options,
    PartedWriter,
    as_bool,
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

UPLOADS = ".ebas-uploads/"
PARTS = ".ebas-parts/"
COMPOSE_MAX = 32
CHUNK_UNIT = 256 * 1024
CLASSES = {"STANDARD", "NEARLINE", "COLDLINE", "ARCHIVE"}
_UPLOAD_ID = re.compile(r"[0-9a-f]{32}\Z")
_PART = re.compile(r"[0-9]{5}\Z")

OPTIONS = {
    "endpoint": (str, None), "project": (str, None), "anonymous": (as_bool, False),
    "credentials_file": (str, None), "storage_class": (lambda v: str(v).upper(), None),
    "class_prefixes": (as_prefixes, ("",)), "chunk_size": (as_size, 8 * MiB),
    "connect_timeout": (as_seconds, 10.0), "read_timeout": (as_seconds, 60.0),
    "credentials": (lambda v: v, None), "entropy": (lambda v: v, None),
}


class GCSStore(Store):
    """Objects in a GCS ``bucket`` under ``prefix`` (see the module docstring)."""

    def __init__(self, bucket: str, prefix: str = "", **options):
        if not bucket:
            raise UsageError("a GCS URL needs a bucket: gs://BUCKET/PREFIX")
        opts = Options("gcs", OPTIONS, {}, options)
        self.keys = KeyMap(prefix)
        self.entropy: Entropy = opts["entropy"] or SYSTEM_ENTROPY
        self.chunk_size = opts["chunk_size"]
        if self.chunk_size % CHUNK_UNIT:
            raise UsageError(f"GCS chunk_size must be a multiple of 256KiB, got {self.chunk_size}")
        self.storage_class = opts["storage_class"]
        if self.storage_class and self.storage_class not in CLASSES:
            raise UsageError(f"storage_class must be one of {', '.join(sorted(CLASSES))}")
        self.class_prefixes = opts["class_prefixes"]
        self.timeout = (opts["connect_timeout"], opts["read_timeout"])
        self.url = f"gs://{bucket}/{self.keys.prefix}"
        self.capabilities = Capabilities(
            min_part_size=1, max_part_size=5 * 1024 * MiB, parallel_writes=16,
            cold_tier=False,  # GCS ARCHIVE objects read directly (with retrieval fees), no thaw
            extra={"kind": "gcs", "storage_class": self.storage_class})
        endpoint = opts["endpoint"] or os.environ.get("STORAGE_EMULATOR_HOST")
        client_options = {"api_endpoint": endpoint} if endpoint else None
        try:
            if opts["credentials"] is not None or opts["anonymous"]:
                from google.auth.credentials import AnonymousCredentials

                creds = opts["credentials"] or AnonymousCredentials()
                self.client = storage.Client(project=opts["project"] or "ebas", credentials=creds,
                                             client_options=client_options)
            elif opts["credentials_file"]:
                self.client = storage.Client.from_service_account_json(
                    opts["credentials_file"], project=opts["project"], client_options=client_options)
            else:
                self.client = storage.Client(project=opts["project"], client_options=client_options)
        except (gauth.DefaultCredentialsError, OSError, ValueError) as exc:
            raise PermissionDenied(f"no usable Google credentials for {self.url}: {exc}",
                                   hint="set GOOGLE_APPLICATION_CREDENTIALS to a service-account key, run "
                                        "'gcloud auth application-default login', or pass credentials_file=") from exc
        # google-cloud-storage 3.x fetches bucket metadata in a background thread for its
        # tracing attributes: one more billed request per bucket, and one that races the
        # first real one. ebas does not trace through it, so switch it off.
        if hasattr(self.client, "_bucket_metadata_cache"):
            self.client._bucket_metadata_cache = None
        self.bucket = self.client.bucket(bucket)
        self._bucket_ok = False

    @classmethod
    def from_url(cls, url: str, **options) -> "GCSStore":
        """Open ``gs://bucket/prefix?options``."""
        bucket, prefix, query, _ = split_url(url, ("gs", "gcs"))
        return cls(bucket, prefix, **{**query, **options})

    # ------------------------------------------------------------ errors
    def _error(self, exc: BaseException, name: str, op: str) -> EbasError:
        what = f"GCS {op} {name!r} in {self.url}"
        if isinstance(exc, EbasError):
            return exc
        status = getattr(exc, "code", None)
        response = getattr(exc, "response", None)
        if status is None and response is not None:
            status = getattr(response, "status_code", None)
        if isinstance(exc, (gauth.RefreshError, gauth.DefaultCredentialsError)):
            return PermissionDenied(f"{what}: credentials failed: {exc}")
        if isinstance(exc, (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
                            urllib3.exceptions.HTTPError, http.client.HTTPException, OSError)):
            return TransientStoreError(f"{what}: connection problem (temporary): {_short(exc)}")
        if isinstance(exc, gex.NotFound) or status == 404:
            if self._bucket_missing():
                return StoreError(f"{what}: bucket {self.bucket.name!r} does not exist",
                                  hint="create the bucket first, or check its name and project")
            return ObjectNotFound(name, store=self.url)
        if status in (401, 403):
            return PermissionDenied(f"{what}: access denied: {_short(exc)}",
                                    hint="check the Google credentials and the bucket's IAM roles")
        if status == 416:
            return InvalidRange(f"{what}: {_short(exc)}")
        if isinstance(exc, (gex.ServerError, gex.TooManyRequests)) or (status or 0) >= 500 or status in (408, 429):
            return TransientStoreError(f"{what}: HTTP {status} (temporary): {_short(exc)}")
        if status == 412:
            return TransientStoreError(f"{what}: the object changed while it was used")
        return StoreError(f"{what}: {type(exc).__name__}: {_short(exc)}")

    def _call(self, op: str, name: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except EbasError:
            raise
        except Exception as exc:  # noqa: BLE001 - translated at the boundary
            raise self._error(exc, name, op) from exc

    def _bucket_missing(self) -> bool:
        if self._bucket_ok:
            return False
        try:
            exists = self.bucket.exists(timeout=self.timeout, retry=None)
        except Exception:  # noqa: BLE001 - cannot tell
            return False
        self._bucket_ok = exists
        return not exists

    def _blob(self, key: str, name: str = "") -> storage.Blob:
        blob = self.bucket.blob(key)
        if self.storage_class and name and name.startswith(self.class_prefixes):
            blob.storage_class = self.storage_class
        return blob

    # ------------------------------------------------------------ objects
    def put(self, name: str, data: bytes) -> None:
        """One upload (multipart or resumable inside the SDK); atomic either way."""
        blob = self._blob(self.keys.key(name), name)
        self._call("put", name, blob.upload_from_string, bytes(data), content_type="application/octet-stream",
                   timeout=self.timeout, retry=None)

    def open_write(self, name: str) -> ObjectWriter:
        """A stream: one upload if small, else a resumable session finalised on ``commit``."""
        blob = self._blob(self.keys.key(name), name)

        def put_small(data: bytes) -> None:
            self._call("put", name, blob.upload_from_string, data, content_type="application/octet-stream",
                       timeout=self.timeout, retry=None)

        def start() -> dict:
            url = self._call("open_write", name, blob.create_resumable_upload_session,
                             content_type="application/octet-stream", timeout=self.timeout, retry=None)
            return {"url": url, "offset": 0}

        def send(state: dict, number: int, data: bytes) -> None:
            self._session_put(state, data, None, name)

        def finish(state: dict, count: int, tail: bytes) -> None:
            self._session_put(state, tail, state["offset"] + len(tail), name)

        def cancel(state: dict) -> None:
            self.client._http.delete(state["url"], timeout=self.timeout)

        return PartedWriter(name, self.chunk_size, put_small=put_small, start=start, send=send,
                            finish=finish, cancel=cancel, tail_in_finish=True)

    def _session_put(self, state: dict, data: bytes, total: int | None, name: str) -> None:
        """Send one chunk of a resumable session (``total`` set: the final chunk)."""
        off = state["offset"]
        if data:
            rng = f"bytes {off}-{off + len(data) - 1}/{'*' if total is None else total}"
        else:
            rng = f"bytes */{total}"
        try:
            resp = self.client._http.put(state["url"], data=data, headers={"Content-Range": rng},
                                         timeout=self.timeout)
        except Exception as exc:  # noqa: BLE001
            raise self._error(exc, name, "write") from exc
        expected = (200, 201) if total is not None else (308,)
        if resp.status_code not in expected:
            err = StoreError if resp.status_code < 500 else TransientStoreError
            raise err(f"GCS resumable upload of {name!r} in {self.url}: HTTP {resp.status_code}: "
                      f"{resp.text[:200]}")
        state["offset"] = off + len(data)

    def get(self, name: str, start: int = 0, length: int | None = None) -> bytes:
        """One (ranged) download; a range past the end is ``InvalidRange``."""
        key = self.keys.key(name)
        if start < 0 or (length is not None and length < 0):
            range_bounds(name, 0, start, length)
        if length == 0:
            range_bounds(name, self.stat(name).size, start, 0)
            return b""
        end = None if length is None else start + length - 1
        try:
            data = self._call("get", name, self.bucket.blob(key).download_as_bytes, start=start or None, end=end,
                              raw_download=True, checksum=None, timeout=self.timeout, retry=None)
        except InvalidRange:
            data = b""
        if start and not data:  # past the end, or exactly at it (GCS answers 416 or nothing)
            range_bounds(name, self.stat(name).size, start, length)
        return data

    def stat(self, name: str) -> ObjectInfo:
        """Object metadata: size and update time."""
        blob = self._call("stat", name, self.bucket.get_blob, self.keys.key(name), timeout=self.timeout,
                          retry=None)
        if blob is None:
            raise ObjectNotFound(name, store=self.url)
        return ObjectInfo(name, blob.size or 0, utc_ns(blob.updated))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """List objects page by page; bookkeeping objects are hidden."""
        pages = self.client.list_blobs(self.bucket, prefix=self.keys.list_prefix(prefix), timeout=self.timeout,
                                       retry=None).pages

        def gen() -> Iterator[ObjectInfo]:
            while True:
                page = self._call("list", prefix, next, pages, None)
                if page is None:
                    return
                for blob in self._call("list", prefix, list, page):
                    name = self.keys.name(blob.name)
                    if name is not None:
                        yield ObjectInfo(name, blob.size or 0, utc_ns(blob.updated))
        return gen()

    def delete(self, name: str) -> None:
        """Delete the object."""
        self._call("delete", name, self.bucket.blob(self.keys.key(name)).delete, timeout=self.timeout,
                   retry=None)

    # ------------------------------------------------------------ resumable uploads
    def _journal(self, upload_id) -> storage.Blob:
        if not isinstance(upload_id, str) or not _UPLOAD_ID.match(upload_id):
            raise self._no_upload(upload_id)
        return self.bucket.blob(self.keys.internal(UPLOADS + upload_id))

    def _no_upload(self, upload_id) -> ObjectNotFound:
        return ObjectNotFound(f"upload {upload_id}", store=self.url,
                              hint="the upload was completed, aborted or never begun")

    def _target(self, upload_id: str) -> str:
        try:
            raw = self._call("upload", upload_id, self._journal(upload_id).download_as_bytes,
                             timeout=self.timeout, retry=None)
        except ObjectNotFound:
            raise self._no_upload(upload_id) from None
        try:
            return raw.decode()
        except UnicodeDecodeError:
            raise StoreError(f"upload {upload_id} in {self.url} has a damaged journal",
                             hint="abort the upload and start it again") from None

    def _part_key(self, upload_id: str, label: str) -> str:
        return self.keys.internal(f"{PARTS}{upload_id}/{label}")

    def begin_upload(self, name: str) -> str:
        """Write the journal object ``.ebas-uploads/<id>`` naming the target."""
        self.keys.key(name)
        upload_id = self.entropy.token_bytes(16).hex()
        journal = self._journal(upload_id)
        journal.metadata = {"target": base64.urlsafe_b64encode(name.encode()).decode()}
        self._call("begin_upload", name, journal.upload_from_string, name.encode(),
                   content_type="application/octet-stream", timeout=self.timeout, retry=None)
        return upload_id

    def upload_part(self, upload_id: str, number: int, data: bytes) -> PartInfo:
        """Store part ``number`` as a hidden object (a re-upload replaces it)."""
        check_part_number(number)
        name = self._target(upload_id)
        data = bytes(data)
        blob = self._blob(self._part_key(upload_id, f"{number:05d}"), name)
        self._call("upload_part", name, blob.upload_from_string, data, content_type="application/octet-stream",
                   timeout=self.timeout, retry=None)
        return PartInfo(number, len(data), hashlib.md5(data, usedforsecurity=False).hexdigest())

    def _part_blobs(self, upload_id: str) -> list[tuple[int, storage.Blob]]:
        base = self._part_key(upload_id, "")
        blobs = self._call("parts", upload_id, list,
                           self.client.list_blobs(self.bucket, prefix=base, timeout=self.timeout, retry=None))
        out = []
        for blob in blobs:
            label = blob.name[len(base):]
            if _PART.match(label):
                out.append((int(label), blob))
        return sorted(out, key=lambda item: item[0])

    def parts(self, upload_id: str) -> list[PartInfo]:
        """The part objects of an upload, from any process."""
        self._target(upload_id)
        return [PartInfo(number, blob.size or 0, _md5_hex(blob)) for number, blob in self._part_blobs(upload_id)]

    def complete(self, upload_id: str) -> None:
        """Compose the parts in order into the target (atomic), then remove the bookkeeping."""
        name = self._target(upload_id)
        blobs = [blob for _, blob in self._part_blobs(upload_id)]
        if not blobs:
            self.put(name, b"")
        else:
            temps: list[storage.Blob] = []
            level = 0
            while len(blobs) > COMPOSE_MAX:
                level += 1
                merged = []
                for i in range(0, len(blobs), COMPOSE_MAX):
                    dest = self._blob(self._part_key(upload_id, f"c{level}-{i // COMPOSE_MAX:05d}"), name)
                    self._call("complete", name, dest.compose, blobs[i:i + COMPOSE_MAX], timeout=self.timeout,
                               retry=None)
                    merged.append(dest)
                temps += merged
                blobs = merged
            target = self._blob(self.keys.key(name), name)
            target.content_type = "application/octet-stream"
            self._call("complete", name, target.compose, blobs, timeout=self.timeout, retry=None)
        self._cleanup(upload_id)

    def abort(self, upload_id: str) -> None:
        """Delete the parts and the journal."""
        self._target(upload_id)
        self._cleanup(upload_id)

    def _cleanup(self, upload_id: str) -> None:
        for _, blob in self._part_blobs(upload_id):
            try:
                self._call("abort", upload_id, blob.delete, timeout=self.timeout, retry=None)
            except ObjectNotFound:
                pass
        base = self._part_key(upload_id, "")
        for blob in self._call("abort", upload_id, list,
                               self.client.list_blobs(self.bucket, prefix=base, timeout=self.timeout, retry=None)):
            try:  # intermediate compose results
                self._call("abort", upload_id, blob.delete, timeout=self.timeout, retry=None)
            except ObjectNotFound:
                pass
        try:
            self._call("abort", upload_id, self._journal(upload_id).delete, timeout=self.timeout, retry=None)
        except ObjectNotFound:
            raise self._no_upload(upload_id) from None

    def uploads(self, prefix: str = "") -> list[PendingUpload]:
        """Journals under ``.ebas-uploads/`` whose target starts with ``prefix``."""
        base = self.keys.internal(UPLOADS)
        found = []
        for blob in self._call("uploads", prefix, list,
                               self.client.list_blobs(self.bucket, prefix=base, timeout=self.timeout, retry=None)):
            upload_id = blob.name[len(base):]
            if not _UPLOAD_ID.match(upload_id):
                continue
            encoded = (blob.metadata or {}).get("target")
            try:
                name = (base64.urlsafe_b64decode(encoded.encode()).decode() if encoded
                        else self._target(upload_id))
            except (binascii.Error, UnicodeDecodeError, ValueError, ObjectNotFound, StoreError):
                continue
            if name.startswith(prefix):
                found.append(PendingUpload(name, upload_id))
        return found

    def close(self) -> None:
        """Close the HTTP session."""
        try:
            self.client.close()
        except Exception:  # noqa: BLE001 - best effort
            pass


def _md5_hex(blob: storage.Blob) -> str:
    try:
        return base64.b64decode(blob.md5_hash).hex() if blob.md5_hash else ""
    except (binascii.Error, ValueError):
        return ""


def _short(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc)
    return text.splitlines()[0][:300] if text else type(exc).__name__


__all__ = ["GCSStore"]
