"""Where the app's Azure Storage account is and how to authenticate to it, read the way the Functions host
reads a connection named `AzureWebJobsStorage`.

Two forms, as on Azure:
- a connection string in `AzureWebJobsStorage` (an account key, or `UseDevelopmentStorage=true` for Azurite);
- identity-based: `AzureWebJobsStorage__accountName` (service URLs derived from it) or explicit
  `__queueServiceUri` / `__blobServiceUri`, with `__credential=managedidentity` and, for a user-assigned
  identity, `__clientId`. Flex Consumption apps and accounts with shared keys disabled use this form.

The queue writer (core/handoff.py) and the blob store both build their SDK clients from `client_args`.
The Azure SDKs are imported lazily: the local host and the tests without Azure never load them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from core.errors import SettingsError

CONNECTION = "AzureWebJobsStorage"
SERVICES = ("queue", "blob")
# Azurite's well-known development account (public, documented by Microsoft; not a secret).
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
DEV_PORTS = {"blob": 10000, "queue": 10001}


@dataclass(frozen=True, slots=True)
class StorageConnection:
    """One storage connection: a connection string, or service URLs plus an identity. Empty: not configured."""

    connection_string: str = field(default="", repr=False)  # may hold the account key
    service_urls: Mapping[str, str] = field(default_factory=dict)  # "queue"/"blob" -> https://acct.queue...
    credential: str = ""  # "managedidentity", or "" for azure-identity's default chain (developer sign-in)
    client_id: str = ""  # the user-assigned identity's client id

    @property
    def configured(self) -> bool:
        return bool(self.connection_string or self.service_urls)

    @property
    def identity_based(self) -> bool:
        return not self.connection_string and bool(self.service_urls)

    def describe(self) -> str:
        """For logs and errors: never the key."""
        if self.connection_string:
            if self.connection_string.replace(" ", "").lower().startswith("usedevelopmentstorage=true"):
                return "Azurite (UseDevelopmentStorage=true)"
            return f"cadena de conexión ({connection_string_account(self.connection_string) or '?'})"
        if self.service_urls:
            who = f"identidad administrada {self.client_id}" if self.client_id else (self.credential or "identidad")
            return f"{', '.join(self.service_urls.values())} con {who}"
        return "sin configurar"

    def client_args(self, service: str) -> dict[str, Any]:
        """Keyword arguments for `<Service>Client.from_connection_string(**args)` when `args` holds
        `conn_str`, else for the client's constructor (`account_url`, `credential`)."""
        if self.connection_string:
            return {"conn_str": expand_development_storage(self.connection_string)}
        url = self.service_urls.get(service)
        if not url:
            raise SettingsError(f"{CONNECTION}__{service}ServiceUri",
                                f"no está definida y no hay {CONNECTION}__accountName de la que derivarla")
        return {"account_url": url, "credential": self.async_credential()}

    def async_credential(self) -> Any:
        """azure-identity's async credential for this connection (the caller closes it with its client)."""
        from azure.identity.aio import DefaultAzureCredential, ManagedIdentityCredential

        if self.credential == "managedidentity":
            return ManagedIdentityCredential(client_id=self.client_id or None)
        return DefaultAzureCredential(managed_identity_client_id=self.client_id or None)


def connection_string_account(connection_string: str) -> str:
    for part in connection_string.split(";"):
        key, _, value = part.partition("=")
        if key.strip().lower() == "accountname":
            return value.strip()
    return ""


def expand_development_storage(connection_string: str) -> str:
    """`UseDevelopmentStorage=true[;DevelopmentStorageProxyUri=http://host]` as the explicit Azurite
    connection string, so every SDK version reads it the same way."""
    parts = dict(p.split("=", 1) for p in connection_string.split(";") if "=" in p)
    if parts.get("UseDevelopmentStorage", "").strip().lower() != "true":
        return connection_string
    base = parts.get("DevelopmentStorageProxyUri", "http://127.0.0.1").rstrip("/")
    return ";".join([
        "DefaultEndpointsProtocol=http", f"AccountName={DEV_ACCOUNT}", f"AccountKey={DEV_KEY}",
        *(f"{service.capitalize()}Endpoint={base}:{port}/{DEV_ACCOUNT}" for service, port in DEV_PORTS.items()),
    ])


def azurite_connection_string(host: str, ports: Mapping[str, int]) -> str:
    """The explicit connection string of an Azurite on `host` with these service ports (tests, local host)."""
    return ";".join([
        "DefaultEndpointsProtocol=http", f"AccountName={DEV_ACCOUNT}", f"AccountKey={DEV_KEY}",
        *(f"{service.capitalize()}Endpoint=http://{host}:{port}/{DEV_ACCOUNT}" for service, port in ports.items()),
    ])


def read_storage_connection(env: Mapping[str, str], name: str = CONNECTION) -> StorageConnection:
    """The connection `name` from app settings, as the Functions host resolves it (the plain setting wins)."""
    plain = env.get(name, "").strip()
    if plain:
        return StorageConnection(connection_string=plain)
    account = env.get(f"{name}__accountName", "").strip()
    urls: dict[str, str] = {}
    for service in SERVICES:
        explicit = env.get(f"{name}__{service}ServiceUri", "").strip().rstrip("/")
        if explicit:
            if not explicit.startswith(("https://", "http://")):
                raise SettingsError(f"{name}__{service}ServiceUri", f"debe ser una URL; se recibió {explicit!r}")
            urls[service] = explicit
        elif account:
            urls[service] = f"https://{account}.{service}.core.windows.net"
    if not urls:
        return StorageConnection()
    credential = env.get(f"{name}__credential", "").strip().lower()
    if credential not in ("", "managedidentity"):
        raise SettingsError(f"{name}__credential", f"debe ser managedidentity o estar vacía; se recibió {credential!r}")
    return StorageConnection(service_urls=urls, credential=credential,
                             client_id=env.get(f"{name}__clientId", "").strip())
