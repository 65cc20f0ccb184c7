"""Where evidence bodies are kept: a local folder, or Blob Storage on the app's own storage account.

A body is written as it streams in and becomes visible only when `commit` is called, after its size
and digest were checked: a local file is written beside its final name and renamed; a blob is staged
block by block and its block list committed (uncommitted blocks are discarded by the service).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import re
import uuid
from glob import escape as glob_escape
from pathlib import Path
from typing import Any, Protocol

from core.errors import SettingsError
from core.settings import Settings

log = logging.getLogger(__name__)
BLOCK_BYTES = 4 * 1024 * 1024  # staged blob blocks; a body smaller than one block is uploaded in one call
_UNSAFE = re.compile(r"[^A-Za-z0-9._=-]+")


def _safe(part: str, limit: int) -> str:
    """Letters, digits and `._=-` only, and never a `..` (a name can never climb out of its folder)."""
    return _UNSAFE.sub("_", part).replace("..", "__")[:limit] or "_"


def evidence_key(phone: str, evidence_id: int, message_id: str, ext: str) -> str:
    """`<phone>/<id>-<wamid><ext>`: the row id makes it unique, the rest lets a person find it."""
    return f"{_safe(phone, 64)}/{evidence_id:08d}-{_safe(message_id, 80)}{_safe(ext, 9)}"


class EvidenceUpload(Protocol):
    async def write(self, chunk: bytes) -> None: ...

    async def commit(self) -> str:
        """Make the body visible; answers where it is (stored in `Evidencias.Ruta`)."""
        ...

    async def abort(self) -> None: ...


class EvidenceStore(Protocol):
    name: str

    def begin(self, key: str, content_type: str | None) -> EvidenceUpload: ...

    async def read(self, path: str) -> bytes: ...

    async def aclose(self) -> None: ...


class _LocalUpload:
    def __init__(self, final: Path) -> None:
        self._final = final
        self._partial = final.with_name(f"{final.name}.{uuid.uuid4().hex[:8]}.parcial")
        self._file: Any = None

    def _open(self) -> Any:
        self._final.parent.mkdir(parents=True, exist_ok=True)
        # Partial files of earlier attempts at this name belong to a holder that died or whose claim
        # expired (a claim is exclusive): drop them, so a crash leaves nothing behind for long.
        for stale in self._final.parent.glob(f"{glob_escape(self._final.name)}.*.parcial"):
            stale.unlink(missing_ok=True)
        return self._partial.open("wb")

    async def write(self, chunk: bytes) -> None:
        if self._file is None:
            self._file = await asyncio.to_thread(self._open)
        await asyncio.to_thread(self._file.write, chunk)

    async def commit(self) -> str:
        def finish() -> None:
            if self._file is None:
                self._file = self._open()
            self._file.close()
            os.replace(self._partial, self._final)

        await asyncio.to_thread(finish)
        return str(self._final)

    async def abort(self) -> None:
        def drop() -> None:
            if self._file is not None:
                self._file.close()
            self._partial.unlink(missing_ok=True)

        await asyncio.to_thread(drop)


class LocalEvidenceStore:
    """Files under a folder (`.data/evidencias/` by default): for the local host and tests."""

    name = "local"

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalEvidenceStore({str(self.root)!r})"

    def begin(self, key: str, content_type: str | None) -> EvidenceUpload:
        return _LocalUpload(self.root / key)

    def _read(self, path: str) -> bytes:
        target = Path(path).resolve()
        if not target.is_relative_to(self.root.resolve()):
            raise ValueError(f"la ruta {path!r} no pertenece al almacén de evidencias")
        return target.read_bytes()

    async def read(self, path: str) -> bytes:
        return await asyncio.to_thread(self._read, path)

    async def aclose(self) -> None:
        return None


class _BlobUpload:
    def __init__(self, store: BlobEvidenceStore, key: str, content_type: str | None) -> None:
        self._store = store
        self._key = key
        self._content_type = content_type
        self._buffer = bytearray()
        self._blocks: list[str] = []
        self._blob: Any = None

    async def _client(self) -> Any:
        if self._blob is None:
            container = await self._store.container()
            self._blob = container.get_blob_client(self._key)
        return self._blob

    async def _stage(self, data: bytes) -> None:
        block_id = base64.b64encode(f"{len(self._blocks):08d}".encode()).decode()
        await (await self._client()).stage_block(block_id, data)
        self._blocks.append(block_id)

    async def write(self, chunk: bytes) -> None:
        self._buffer += chunk
        while len(self._buffer) >= BLOCK_BYTES:
            block = bytes(self._buffer[:BLOCK_BYTES])
            del self._buffer[:BLOCK_BYTES]
            await self._stage(block)

    async def commit(self) -> str:
        from azure.storage.blob import ContentSettings

        blob = await self._client()
        settings = ContentSettings(content_type=self._content_type or "application/octet-stream")
        if not self._blocks:
            await blob.upload_blob(bytes(self._buffer), overwrite=True, content_settings=settings)
        else:
            if self._buffer:
                await self._stage(bytes(self._buffer))
            await blob.commit_block_list(self._blocks, content_settings=settings)
        self._buffer.clear()
        return str(blob.url)

    async def abort(self) -> None:
        self._buffer.clear()  # staged blocks never committed are discarded by the service


class BlobEvidenceStore:
    """Blobs in a container (`evidencias`) of the app's storage account, created on first use."""

    name = "blob"

    def __init__(self, service: Any, container_name: str, credential: Any = None) -> None:
        self._service = service
        self._credential = credential  # an azure.identity.aio credential to close, when identity-based
        self.container_name = container_name
        self._container: Any = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"BlobEvidenceStore({self._service.url!r}, {self.container_name!r})"

    async def container(self) -> Any:
        async with self._lock:
            if self._container is None:
                from azure.core.exceptions import ResourceExistsError

                container = self._service.get_container_client(self.container_name)
                try:
                    await container.create_container()
                except ResourceExistsError:
                    pass
                self._container = container
        return self._container

    def begin(self, key: str, content_type: str | None) -> EvidenceUpload:
        return _BlobUpload(self, key, content_type)

    async def read(self, path: str) -> bytes:
        container = await self.container()
        prefix = f"{container.url.rstrip('/')}/"
        if not path.startswith(prefix):
            raise ValueError(f"la ruta {path!r} no pertenece al contenedor {self.container_name}")
        from urllib.parse import unquote

        downloader = await container.get_blob_client(unquote(path[len(prefix):])).download_blob()
        return bytes(await downloader.readall())

    async def aclose(self) -> None:
        await self._service.close()
        if self._credential is not None:
            await self._credential.close()


def blob_store_from_settings(settings: Settings) -> BlobEvidenceStore:
    """A connection string (`AzureWebJobsStorage`) or identity-based settings
    (`AzureWebJobsStorage__blobServiceUri` or `__accountName`, with azure-identity installed)."""
    from azure.storage.blob.aio import BlobServiceClient

    if settings.azure_webjobs_storage:
        service = BlobServiceClient.from_connection_string(settings.azure_webjobs_storage)
        return BlobEvidenceStore(service, settings.evidence_container)
    account_url = settings.azure_blob_service_uri or (
        f"https://{settings.azure_storage_account_name}.blob.core.windows.net"
        if settings.azure_storage_account_name else "")
    if not account_url:
        raise SettingsError("AzureWebJobsStorage", "no está configurado: no hay dónde guardar las evidencias en Azure")
    try:
        from azure.identity.aio import DefaultAzureCredential
    except ImportError:
        raise SettingsError("AzureWebJobsStorage__blobServiceUri",
                            "la identidad administrada necesita el paquete azure-identity instalado") from None
    credential = DefaultAzureCredential(managed_identity_client_id=settings.azure_storage_client_id or None)
    return BlobEvidenceStore(BlobServiceClient(account_url, credential=credential), settings.evidence_container,
                             credential)


def store_from_settings(settings: Settings) -> EvidenceStore:
    """Blob Storage when the app has a storage account; otherwise the local folder."""
    if settings.azure_webjobs_storage or settings.azure_blob_service_uri or settings.azure_storage_account_name:
        return blob_store_from_settings(settings)
    return LocalEvidenceStore(settings.evidence_dir)
