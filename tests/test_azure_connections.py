"""How the app connects on Azure: identity-based storage settings, managed-identity SQL strings, SQLite refused
on Azure, a worker that never raises, and migrations that need no WhatsApp secret."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import azure.functions as func
import pytest
from azure.functions.queue import QueueMessage

from bot.functions.conversation import handle_queue_message
from bot.functions.health import health
from bot.runtime import use_runtime
from core import metrics
from core.azure_storage import (
    DEV_ACCOUNT,
    StorageConnection,
    azurite_connection_string,
    expand_development_storage,
    read_storage_connection,
)
from core.errors import SettingsError
from core.handoff import HandoffError, StorageQueueHandoff, describe_storage_error, queue_client
from core.settings import load_settings
from core.storage.sql_connection import sql_authentication
from tests.conftest import ROOT, base_env

CLIENT_ID = "4b1f0c3e-9a57-4f7e-8a53-2f4a3c6d7e81"

# -- AzureWebJobsStorage, both forms ---------------------------------------------------------------


def test_a_connection_string_wins_over_identity_settings() -> None:
    conn = read_storage_connection({"AzureWebJobsStorage": "UseDevelopmentStorage=true",
                                    "AzureWebJobsStorage__accountName": "cuenta"})
    assert conn.connection_string and not conn.identity_based
    assert "AccountKey" not in repr(conn) and conn.describe() == "Azurite (UseDevelopmentStorage=true)"


def test_account_name_derives_every_service_url_with_the_managed_identity() -> None:
    conn = read_storage_connection({"AzureWebJobsStorage__accountName": "stbot",
                                    "AzureWebJobsStorage__credential": "managedidentity",
                                    "AzureWebJobsStorage__clientId": CLIENT_ID})
    assert conn.identity_based
    assert dict(conn.service_urls) == {"queue": "https://stbot.queue.core.windows.net",
                                       "blob": "https://stbot.blob.core.windows.net"}
    assert conn.client_id == CLIENT_ID and CLIENT_ID in conn.describe()


def test_explicit_service_uris_are_used_as_given() -> None:
    conn = read_storage_connection({"AzureWebJobsStorage__queueServiceUri": "https://q.example.net/",
                                    "AzureWebJobsStorage__blobServiceUri": "https://b.example.net"})
    assert dict(conn.service_urls) == {"queue": "https://q.example.net", "blob": "https://b.example.net"}
    assert conn.credential == ""  # azure-identity's default chain (a developer's sign-in)


def test_only_a_queue_uri_gives_no_blob_client_and_says_which_setting() -> None:
    conn = read_storage_connection({"AzureWebJobsStorage__queueServiceUri": "https://q.example.net"})
    with pytest.raises(SettingsError, match="AzureWebJobsStorage__blobServiceUri"):
        conn.client_args("blob")


@pytest.mark.parametrize(("name", "value"), [("AzureWebJobsStorage__credential", "clientsecret"),
                                             ("AzureWebJobsStorage__queueServiceUri", "stbot.queue")])
def test_bad_identity_settings_name_the_setting(name: str, value: str) -> None:
    env = {"AzureWebJobsStorage__accountName": "stbot", name: value}
    with pytest.raises(SettingsError, match=name):
        read_storage_connection(env)


async def test_nothing_set_is_not_configured_and_the_queue_writer_says_so() -> None:
    assert not read_storage_connection({}).configured
    with pytest.raises(HandoffError, match="AzureWebJobsStorage"):
        await StorageQueueHandoff(StorageConnection()).enqueue(["5215512345678"])


async def test_identity_clients_carry_an_async_managed_identity_credential() -> None:
    """The real SDK objects, built offline: the queue client gets the account URL and azure-identity's async
    managed-identity credential for the user-assigned client id; nothing is requested until first use."""
    from azure.identity.aio import ManagedIdentityCredential

    conn = read_storage_connection({"AzureWebJobsStorage__accountName": "stbot",
                                    "AzureWebJobsStorage__credential": "managedidentity",
                                    "AzureWebJobsStorage__clientId": CLIENT_ID})
    client = queue_client(conn, "conversaciones-pendientes")
    try:
        assert client.url == "https://stbot.queue.core.windows.net/conversaciones-pendientes"
        assert isinstance(client.credential, ManagedIdentityCredential)
    finally:
        await client.close()
        await client.credential.close()
    args = conn.client_args("blob")
    assert args["account_url"] == "https://stbot.blob.core.windows.net"
    await args["credential"].close()


def test_development_storage_expands_to_azurite_defaults() -> None:
    expanded = expand_development_storage("UseDevelopmentStorage=true")
    assert f"QueueEndpoint=http://127.0.0.1:10001/{DEV_ACCOUNT}" in expanded
    assert f"BlobEndpoint=http://127.0.0.1:10000/{DEV_ACCOUNT}" in expanded
    proxied = expand_development_storage("UseDevelopmentStorage=true;DevelopmentStorageProxyUri=http://10.0.0.5")
    assert "QueueEndpoint=http://10.0.0.5:10001/" in proxied
    explicit = azurite_connection_string("127.0.0.1", {"queue": 10101})
    assert expand_development_storage(explicit) == explicit


def test_service_errors_keep_the_service_code_and_message() -> None:
    from azure.core.exceptions import HttpResponseError

    exc = HttpResponseError(message="The API version 2099-01-01 is not supported by Azurite.")
    exc.error_code = "InvalidHeaderValue"
    text = describe_storage_error(exc)
    assert "InvalidHeaderValue" in text and "not supported by Azurite" in text


# -- SQL with the managed identity ---------------------------------------------------------------

SERVER = "Driver={ODBC Driver 18 for SQL Server};Server=tcp:sql-bot.database.windows.net,1433;Database=bot;"


@pytest.mark.parametrize(("conn", "expected"), [
    (SERVER + "Authentication=ActiveDirectoryMsi;", "ActiveDirectoryMsi (identidad asignada por el sistema)"),
    (SERVER + f"Authentication=ActiveDirectoryMsi;UID={CLIENT_ID};", f"ActiveDirectoryMsi {CLIENT_ID}"),
    (SERVER + "Uid=bot;Pwd={p@ss;w0rd};", "sql"),
    (SERVER + "Authentication=ActiveDirectoryDefault;", "ActiveDirectoryDefault"),
])
def test_sql_sign_in_is_described_without_secrets(conn: str, expected: str) -> None:
    assert sql_authentication(conn) == expected


@pytest.mark.parametrize(("conn", "why"), [
    (SERVER + "Authentication=ActiveDirectoryMsi;UID=bot-identity;", "client id"),
    (SERVER + "Authentication=ActiveDirectoryMsi;PWD=x;", "quita PWD"),
    (SERVER + "Authentication=ActiveDirectoryMagic;", "no es un modo"),
    (SERVER + "Authentication=SqlPassword;UID=bot;", "necesita PWD"),
])
def test_a_malformed_sql_sign_in_names_the_setting(conn: str, why: str, tmp_path: Path) -> None:
    from core.storage import open_database

    settings = load_settings(base_env(tmp_path / "x.sqlite3", SQL_CONNECTION_STRING=conn))
    with pytest.raises(SettingsError, match=f"SQL_CONNECTION_STRING.*{why}"):
        open_database(settings)


# -- on Azure, no SQLite -------------------------------------------------------------------------


def _get(route: str) -> func.HttpRequest:
    return func.HttpRequest(method="GET", url=f"http://localhost/api/{route}", body=b"", headers={})


async def test_on_azure_without_sql_health_is_503_with_the_reason(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    env = base_env(tmp_path / "bot.sqlite3", WEBSITE_INSTANCE_ID="a1b2c3")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SQL_CONNECTION_STRING", raising=False)
    use_runtime(None)
    try:
        response = await health(_get("health"))
    finally:
        use_runtime(None)
    body = json.loads(response.get_body())
    assert response.status_code == 503 and body["status"] == "unavailable"
    assert "SQL_CONNECTION_STRING" in body["reason"] and "Azure" in body["reason"]
    assert not (tmp_path / "bot.sqlite3").exists()  # nothing was created


# -- the worker never raises ----------------------------------------------------------------------


def _message(body: str) -> QueueMessage:
    return QueueMessage(id="m1", body=body.encode(), dequeue_count=1, insertion_time=datetime.now(UTC))


async def test_a_settings_error_in_the_worker_is_logged_and_counted_not_raised(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv("WHATSAPP_APP_SECRET", raising=False)
    monkeypatch.setenv("WHATSAPP_VERIFY_TOKEN", "x")
    use_runtime(None)
    before = metrics.worker_failures_total.labels(reason="configuracion")._value.get()
    with caplog.at_level(logging.ERROR):
        await handle_queue_message(_message("5215512345678"))  # returns: the host deletes, nothing to poison
    use_runtime(None)
    assert metrics.worker_failures_total.labels(reason="configuracion")._value.get() == before + 1
    assert "WORKER_NO_DISPONIBLE" in caplog.text and "WHATSAPP_APP_SECRET" in caplog.text
    assert "5215512345678" not in caplog.text  # the phone number stays masked


async def test_on_azure_without_sql_the_worker_does_not_raise(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    for name, value in base_env(tmp_path / "bot.sqlite3", WEBSITE_INSTANCE_ID="a1").items():
        monkeypatch.setenv(name, value)
    use_runtime(None)
    await handle_queue_message(_message("5215512345678"))
    use_runtime(None)
    assert "SQL_CONNECTION_STRING" in caplog.text


# -- migrations on a clean clone --------------------------------------------------------------------


def test_migrate_needs_no_whatsapp_secret(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WHATSAPP_", "SQL_", "AzureWebJobs"))}
    env["SQLITE_PATH"] = str(tmp_path / "fresh" / "bot.sqlite3")
    done = subprocess.run([sys.executable, "-m", "core.storage.migrate", "--seed"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "schema version" in done.stdout and (tmp_path / "fresh" / "bot.sqlite3").exists()
