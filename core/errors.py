"""The project's own errors. Driver errors are translated into these at the storage edge."""

from __future__ import annotations


class BotError(Exception):
    """Base of every error this project raises on purpose."""


class SettingsError(BotError):
    """A missing or malformed setting; `str()` is the one line a host prints."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(f"Configuración inválida: {name} {reason}")


class StorageError(BotError):
    """The database refused or failed an operation."""


class TransientDatabaseError(StorageError):
    """Worth retrying: a busy SQLite file, a deadlock victim, a dropped connection."""

    def __init__(self, message: str, *, reconnect: bool = False, availability: bool = False) -> None:
        self.reconnect = reconnect  # the connection is broken: open a new one before retrying
        # The database is failing over, throttling or waking up (Azure SQL): worth a longer backoff than a
        # deadlock or a busy lock, which clear in milliseconds.
        self.availability = availability
        super().__init__(message)


class QueryTimeout(StorageError):
    """A statement ran past its query timeout (SQL Server's HYT00). The connection still works and a
    retry in the same run would likely time out again: the caller logs it and its next run retries."""


class DatabaseUnavailable(StorageError):
    """The database cannot be reached or opened at all."""


class SchemaOutdated(StorageError):
    """The database has not been migrated to the version this code needs."""


class ConcurrencyError(BotError):
    """A versioned session write lost the race (`UPDATE ... WHERE Version = @expected` hit 0 rows)."""

    def __init__(self, phone: str, expected_version: int, operation: str) -> None:
        self.phone = phone
        self.expected_version = expected_version
        self.operation = operation
        super().__init__(
            f"ConcurrencyError: conflicto de concurrencia en {operation}; versión esperada {expected_version}"
        )


class LeaseLost(BotError):
    """The conversation lease expired or was taken over; the holder must not commit."""

    def __init__(self, key: str, token: int) -> None:
        self.key = key
        self.token = token
        super().__init__(f"lease lost for token {token}")


class AlreadyProcessed(BotError):
    """The inbox row was already handled by someone else; the transition is dropped."""


class AIProviderError(BotError):
    """An AI provider failed a call: HTTP error, unreachable, or an answer that is not the JSON we asked for.

    The intent service turns it into the next provider or a fallback; it never reaches a webhook.
    """

    def __init__(self, provider: str, reason: str, *, status: int | None = None, code: str | None = None) -> None:
        self.provider = provider
        self.reason = reason
        self.status = status
        self.code = code
        super().__init__(f"{provider}: {reason}")


class ConversationBusy(AIProviderError):
    """The provider refused new work on a conversation that has a response in flight (`conversation_locked`)."""
