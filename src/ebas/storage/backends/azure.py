"""Azure Blob Storage (block blobs) via azure-storage-blob.

URL: ``azure://ACCOUNT/CONTAINER[/PREFIX][?option=value&...]``. Options:

``endpoint``      blob service URL (default ``https://ACCOUNT.blob.core.windows.net``;
                  azurite: ``http://127.0.0.1:10000/devstoreaccount1``)
``tier``          ``hot``, ``cool``, ``cold`` or ``archive`` for objects written
``tier_prefixes`` comma-separated name prefixes the tier applies to (default: all)
``block_size``    staged block size for streams (default 8MiB)
``connect_timeout``, ``read_timeout``  seconds or a duration such as 2min (default 10 and 60)
``sdk_retries``   retries the SDK makes itself (default 0: ebas's RetryingStore retries)

Credentials (keywords, else environment), first found wins: ``connection_string`` /
``AZURE_STORAGE_CONNECTION_STRING``; ``account_key`` / ``AZURE_STORAGE_KEY``;
``sas_token`` / ``AZURE_STORAGE_SAS_TOKEN``; else ``DefaultAzureCredential`` when
azure-identity is installed (managed identity, az login, environment).

Resumable uploads are staged blocks: ``begin_upload`` writes a small marker blob
``PREFIX/.ebas-uploads/<id>`` (its metadata names the target), ``upload_part`` stages
a block on the *target* blob with id ``base64("<id>-<part:05d>")``, ``parts`` reads
``get_block_list("uncommitted")`` from any process, and ``complete`` commits the
block list (atomic) and removes the marker. Azure keeps one set of uncommitted blocks
per blob, so two uploads to the same name must not be completed concurrently (the
first commit discards the other's blocks); ebas names are content-addressed, so both
would carry the same bytes anyway.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from typing import Iterator

from azure.core import exceptions as aex
from azure.storage.blob import BlobBlock, BlobServiceClient, StandardBlobTier

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
    ObjectArchived,
    Options,
    PartedWriter,
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
TIERS = {"hot": "Hot", "cool": "Cool", "cold": "Cold", "archive": "Archive"}
_UPLOAD_ID = re.compile(r"[0-9a-f]{32}\Z")
_ARCHIVED = {"BlobArchived", "BlobBeingRehydrated"}

OPTIONS = {
    "endpoint": (str, None), "tier": (lambda v: str(v).lower(), None),
    "tier_prefixes": (as_prefixes, ("",)), "block_size": (as_size, 8 * MiB),
    "connect_timeout": (as_seconds, 10.0), "read_timeout": (as_seconds, 60.0), "sdk_retries": (int, 0),
    "connection_string": (str, None), "account_key": (str, None), "sas_token": (str, None),
    "credential": (lambda v: v, None), "entropy": (lambda v: v, None),
}


def _block_id(token: str, number: int) -> str:
    return base64.b64encode(f"{token}-{number:05d}".encode()).decode()


def _parse_block(block_id: str) -> tuple[str, int] | None:
    try:
        token, _, number = base64.b64decode(block_id).decode().rpartition("-")
        return (token, int(number)) if _UPLOAD_ID.match(token) else None
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


class AzureStore(Store):
    """Block blobs in ``container`` under ``prefix`` (see the module docstring)."""

    def __init__(self, account: str, container: str, prefix: str = "", **options):
        if not account or not container:
            raise UsageError("an Azure URL needs an account and a container: azure://ACCOUNT/CONTAINER/PREFIX")
        opts = Options("azure", OPTIONS, {}, options)
        self.account, self.container = account, container
        self.keys = KeyMap(prefix)
        self.entropy: Entropy = opts["entropy"] or SYSTEM_ENTROPY
        self.block_size = opts["block_size"]
        tier = opts["tier"]
        if tier and tier not in TIERS:
            raise UsageError(f"tier must be one of {', '.join(TIERS)}, got {tier!r}")
        self.tier = TIERS.get(tier or "")
        self.tier_prefixes = opts["tier_prefixes"]
        endpoint = opts["endpoint"] or f"https://{account}.blob.core.windows.net"
        self.url = f"azure://{account}/{container}/{self.keys.prefix}"
        self.capabilities = Capabilities(
            min_part_size=1, max_part_size=4000 * MiB, parallel_writes=16,
            cold_tier=self.tier == "Archive", extra={"kind": "azure", "tier": self.tier})
        kwargs = {"retry_total": opts["sdk_retries"], "connection_timeout": opts["connect_timeout"],
                  "read_timeout": opts["read_timeout"], "max_single_put_size": 64 * MiB,
                  "max_block_size": self.block_size}
        conn = opts["connection_string"] or os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
        if conn and not (opts["account_key"] or opts["sas_token"] or opts["credential"]):
            service = BlobServiceClient.from_connection_string(conn, **kwargs)
        else:
            service = BlobServiceClient(account_url=endpoint, credential=self._credential(opts), **kwargs)
        self.client = service.get_container_client(container)

    def _credential(self, opts: Options):
        if opts["credential"] is not None:
            return opts["credential"]
        key = opts["account_key"] or os.environ.get("AZURE_STORAGE_KEY") or os.environ.get("AZURE_STORAGE_ACCOUNT_KEY")
        if key:
            return {"account_name": self.account, "account_key": key}
        sas = opts["sas_token"] or os.environ.get("AZURE_STORAGE_SAS_TOKEN")
        if sas:
            return sas.lstrip("?")
        try:
            from azure.identity import DefaultAzureCredential
        except ImportError:
            return None  # anonymous: public containers only
        return DefaultAzureCredential()

    @classmethod
    def from_url(cls, url: str, **options) -> "AzureStore":
        """Open ``azure://account/container/prefix?options``."""
        account, path, query, _ = split_url(url, "azure")
        container, _, prefix = path.partition("/")
        return cls(account, container, prefix, **{**query, **options})

    # ------------------------------------------------------------ errors
    def _error(self, exc: BaseException, name: str, op: str) -> EbasError:
        what = f"Azure {op} {name!r} in {self.url}"
        if isinstance(exc, EbasError):
            return exc
        if isinstance(exc, aex.ClientAuthenticationError):
            return PermissionDenied(f"{what}: authentication failed: {_short(exc)}",
                                    hint="check AZURE_STORAGE_CONNECTION_STRING / AZURE_STORAGE_KEY / "
                                         "AZURE_STORAGE_SAS_TOKEN or the managed identity's role")
        if isinstance(exc, (aex.ServiceRequestError, aex.ServiceResponseError, aex.IncompleteReadError,
                            OSError)):
            return TransientStoreError(f"{what}: connection problem (temporary): {_short(exc)}")
        if isinstance(exc, aex.HttpResponseError):
            code = str(getattr(exc.error_code, "value", exc.error_code) or "")
            status = exc.status_code or 0
            if code == "ContainerNotFound":
                return StoreError(f"{what}: container {self.container!r} does not exist",
                                  hint="create the container first, or check the account and container names")
            if status == 404:
                return ObjectNotFound(name, store=self.url)
            if code in _ARCHIVED:
                return ObjectArchived(
                    f"{what}: the blob is in the archive tier and must be rehydrated before it can be read",
                    name=name, hint="rehydrate it to the hot or cool tier (Set Blob Tier, e.g. "
                                    "'az storage blob set-tier --tier Hot'), wait for it, then retry")
            if status == 403:
                return PermissionDenied(f"{what}: access denied ({code}): {_short(exc)}")
            if status == 416:
                return InvalidRange(f"{what}: {_short(exc)}")
            if status >= 500 or status in (408, 429) or code in ("ServerBusy", "OperationTimedOut"):
                return TransientStoreError(f"{what}: HTTP {status} {code} (temporary)")
            if status == 412:
                return TransientStoreError(f"{what}: the blob changed while it was read (retry reads it anew)")
            return StoreError(f"{what}: {code or status}: {_short(exc)}")
        if isinstance(exc, aex.AzureError):
            return StoreError(f"{what}: {_short(exc)}")
        return StoreError(f"{what}: unexpected {type(exc).__name__}: {exc}")

    def _call(self, op: str, name: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except EbasError:
            raise
        except Exception as exc:  # noqa: BLE001 - translated at the boundary
            raise self._error(exc, name, op) from exc

    def _tier(self, name: str) -> dict:
        if self.tier and name.startswith(self.tier_prefixes):
            return {"standard_blob_tier": StandardBlobTier(self.tier)}
        return {}

    # ------------------------------------------------------------ objects
    def put(self, name: str, data: bytes) -> None:
        """Put Blob (atomic); above 64 MiB the SDK stages blocks and commits them."""
        blob = self.client.get_blob_client(self.keys.key(name))
        self._call("put", name, blob.upload_blob, bytes(data), overwrite=True, max_concurrency=1,
                   **self._tier(name))

    def open_write(self, name: str) -> ObjectWriter:
        """A stream: one Put Blob if small, else staged blocks committed on ``commit``."""
        blob = self.client.get_blob_client(self.keys.key(name))

        def put_small(data: bytes) -> None:
            self._call("put", name, blob.upload_blob, data, overwrite=True, **self._tier(name))

        def start() -> str:
            return self.entropy.token_bytes(16).hex()

        def send(token: str, number: int, data: bytes) -> None:
            self._call("write", name, blob.stage_block, _block_id(token, number), data)

        def finish(token: str, count: int) -> None:
            blocks = [BlobBlock(_block_id(token, n)) for n in range(1, count + 1)]
            self._call("commit", name, blob.commit_block_list, blocks, **self._tier(name))

        return PartedWriter(name, self.block_size, put_small=put_small, start=start, send=send,
                            finish=finish, cancel=lambda token: None)  # uncommitted blocks expire

    def get(self, name: str, start: int = 0, length: int | None = None) -> bytes:
        """Get Blob (ranged when asked)."""
        blob = self.client.get_blob_client(self.keys.key(name))
        if start < 0 or (length is not None and length < 0):
            range_bounds(name, 0, start, length)
        if length == 0:
            range_bounds(name, self.stat(name).size, start, 0)
            return b""
        try:
            stream = self._call("get", name, blob.download_blob, offset=start if start or length else None,
                                length=length, max_concurrency=1)
            return self._call("get", name, stream.readall)
        except InvalidRange:
            range_bounds(name, self.stat(name).size, start, length)
            return b""

    def stat(self, name: str) -> ObjectInfo:
        """Get Blob Properties."""
        blob = self.client.get_blob_client(self.keys.key(name))
        props = self._call("stat", name, blob.get_blob_properties)
        return ObjectInfo(name, props.size, utc_ns(props.last_modified))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """List Blobs (committed blobs only), page by page."""
        pages = self.client.list_blobs(name_starts_with=self.keys.list_prefix(prefix)).by_page()

        def gen() -> Iterator[ObjectInfo]:
            while True:
                page = self._call("list", prefix, next, pages, None)
                if page is None:
                    return
                for item in self._call("list", prefix, list, page):
                    name = self.keys.name(item.name)
                    if name is not None:
                        yield ObjectInfo(name, item.size, utc_ns(item.last_modified))
        return gen()

    def delete(self, name: str) -> None:
        """Delete Blob (with its snapshots)."""
        blob = self.client.get_blob_client(self.keys.key(name))
        self._call("delete", name, blob.delete_blob, delete_snapshots="include")

    def thaw(self, name: str, tier: str = "hot", priority: str = "Standard") -> None:
        """Start rehydrating an archived blob to ``tier`` (it becomes readable later)."""
        blob = self.client.get_blob_client(self.keys.key(name))
        self._call("thaw", name, blob.set_standard_blob_tier, StandardBlobTier(TIERS[tier]),
                   rehydrate_priority=priority)

    # ------------------------------------------------------------ resumable uploads
    def _marker(self, upload_id: str):
        if not isinstance(upload_id, str) or not _UPLOAD_ID.match(upload_id):
            raise self._no_upload(upload_id)
        return self.client.get_blob_client(self.keys.internal(UPLOADS + upload_id))

    def _no_upload(self, upload_id) -> ObjectNotFound:
        return ObjectNotFound(f"upload {upload_id}", store=self.url,
                              hint="the upload was completed, aborted or never begun")

    def _target(self, upload_id: str) -> str:
        """The object name an upload is for (from its marker), or ObjectNotFound."""
        marker = self._marker(upload_id)
        try:
            props = self._call("upload", upload_id, marker.get_blob_properties)
        except ObjectNotFound:
            raise self._no_upload(upload_id) from None
        if props.metadata.get("state") == "done":
            raise self._no_upload(upload_id)
        return _decode_name(props.metadata.get("target", ""), upload_id, self)

    def begin_upload(self, name: str) -> str:
        """Write the marker blob that makes the upload findable; return its id."""
        self.keys.key(name)
        upload_id = self.entropy.token_bytes(16).hex()
        target = base64.urlsafe_b64encode(name.encode()).decode()
        self._call("begin_upload", name, self._marker(upload_id).upload_blob, name.encode(),
                   overwrite=True, metadata={"target": target})
        return upload_id

    def upload_part(self, upload_id: str, number: int, data: bytes) -> PartInfo:
        """Put Block on the target blob (re-staging a part replaces it)."""
        check_part_number(number)
        name = self._target(upload_id)
        data = bytes(data)
        blob = self.client.get_blob_client(self.keys.key(name))
        self._call("upload_part", name, blob.stage_block, _block_id(upload_id, number), data)
        return PartInfo(number, len(data), hashlib.md5(data, usedforsecurity=False).hexdigest())

    def _blocks(self, upload_id: str) -> tuple[str, list[tuple[int, str, int]]]:
        name = self._target(upload_id)
        blob = self.client.get_blob_client(self.keys.key(name))
        try:
            _, uncommitted = self._call("parts", name, blob.get_block_list, "uncommitted")
        except ObjectNotFound:
            return name, []
        mine = []
        for block in uncommitted:
            parsed = _parse_block(block.id)
            if parsed and parsed[0] == upload_id:
                mine.append((parsed[1], block.id, block.size))
        return name, sorted(mine)

    def parts(self, upload_id: str) -> list[PartInfo]:
        """Our uncommitted blocks on the target, from any process."""
        return [PartInfo(number, size) for number, _, size in self._blocks(upload_id)[1]]

    def complete(self, upload_id: str) -> None:
        """Put Block List of our blocks in part order (atomic), then drop the marker."""
        name, blocks = self._blocks(upload_id)
        blob = self.client.get_blob_client(self.keys.key(name))
        self._call("complete", name, blob.commit_block_list, [BlobBlock(bid) for _, bid, _ in blocks],
                   **self._tier(name))
        self._drop_marker(upload_id)

    def abort(self, upload_id: str) -> None:
        """Drop the marker; the staged blocks are discarded by Azure (uncommitted blocks expire)."""
        self._target(upload_id)
        self._drop_marker(upload_id)

    def _drop_marker(self, upload_id: str) -> None:
        """Delete the marker; with append-only (no delete) credentials, mark it done instead."""
        marker = self._marker(upload_id)
        try:
            self._call("abort", upload_id, marker.delete_blob)
        except ObjectNotFound:
            raise self._no_upload(upload_id) from None
        except PermissionDenied:
            self._call("abort", upload_id, marker.upload_blob, b"", overwrite=True, metadata={"state": "done"})

    def uploads(self, prefix: str = "") -> list[PendingUpload]:
        """Markers under ``.ebas-uploads/`` whose target starts with ``prefix``."""
        base = self.keys.internal(UPLOADS)
        items = self._call("uploads", prefix, list,
                           self.client.list_blobs(name_starts_with=base, include=["metadata"]))
        found = []
        for item in items:
            upload_id = item.name[len(base):]
            if not _UPLOAD_ID.match(upload_id) or (item.metadata or {}).get("state") == "done":
                continue
            try:
                name = _decode_name((item.metadata or {}).get("target", ""), upload_id, self)
            except StoreError:
                continue
            if name.startswith(prefix):
                found.append(PendingUpload(name, upload_id))
        return found

    def close(self) -> None:
        """Close the HTTP pipeline."""
        try:
            self.client.close()
        except Exception:  # noqa: BLE001 - best effort
            pass


def _decode_name(encoded: str, upload_id: str, store: AzureStore) -> str:
    try:
        return base64.urlsafe_b64decode(encoded.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise StoreError(f"upload {upload_id} in {store.url} has a damaged marker",
                         hint="abort the upload and start it again") from None


def _short(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


__all__ = ["AzureStore"]
