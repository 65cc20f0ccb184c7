"""Graph API errors, classified by Graph error `code` (pywa's habit).

Each class declares the codes it stands for; the bases say what a caller should do:
`TransientWhatsAppError` -> retry later with backoff, `PermanentWhatsAppError` -> give up now with
the reason kept, `SendOutcomeUnknown` -> the request may have reached Meta, do not resend blindly.
Plain classes (not frozen dataclasses) so `add_note` and context managers keep working.
"""

from __future__ import annotations

from typing import Any, ClassVar

from core.errors import BotError


class WhatsAppError(BotError):
    """A failed Graph API call. Never carries the access token."""

    codes: ClassVar[frozenset[int]] = frozenset()
    transient: ClassVar[bool] = False

    def __init__(
        self, message: str, *, code: int | None = None, status: int | None = None, fbtrace_id: str | None = None,
        details: str | None = None,
    ) -> None:
        self.message = message
        self.code = code
        self.status = status
        self.fbtrace_id = fbtrace_id
        self.details = details
        super().__init__(self.describe())

    def describe(self) -> str:
        parts = [type(self).__name__]
        if self.status is not None:
            parts.append(f"http={self.status}")
        if self.code is not None:
            parts.append(f"code={self.code}")
        if self.fbtrace_id:
            parts.append(f"fbtrace_id={self.fbtrace_id}")
        text = " ".join(parts) + f": {self.message}"
        return f"{text} ({self.details})" if self.details else text


class TransientWhatsAppError(WhatsAppError):
    """Worth retrying later: Meta did not accept the message, and may accept it after a pause."""

    transient = True
    # Whether the attempt is held against OUTBOX_MAX_ATTEMPTS: not when the request provably never reached
    # Meta or Meta only said "not now"; a row can wait out any such outage (its deadline still bounds it).
    counts_attempt: ClassVar[bool] = True


class ThrottlingError(TransientWhatsAppError):
    # 4 app call limit, 17 user request limit, 80007 WABA rate limit, 130429 throughput of the number,
    # 131056 pair rate (one recipient).
    codes = frozenset({4, 17, 80007, 130429, 131056})
    counts_attempt = False


class ServerError(TransientWhatsAppError):
    # 1/2 unknown/service, 131000 something went wrong, 131016 service unavailable; any 5xx.
    codes = frozenset({1, 2, 131000, 131016})


class NetworkError(TransientWhatsAppError):
    """The request never reached Meta (connection refused, connect timeout, pool exhausted)."""

    counts_attempt = False


class SendOutcomeUnknown(WhatsAppError):
    """The request was written but no answer came back: Meta may or may not have sent the message."""


class PermanentWhatsAppError(WhatsAppError):
    """Retrying the same request will fail the same way."""


class AuthorizationError(PermanentWhatsAppError):
    codes = frozenset({0, 3, 10, 190, 200, 299})


class InvalidParameterError(PermanentWhatsAppError):
    # 100 invalid parameter, 131008 missing parameter, 131009 parameter value, 131051 unsupported type.
    codes = frozenset({100, 131008, 131009, 131051})


class RecipientError(PermanentWhatsAppError):
    # 131026 undeliverable, 131030 not in the allowed list, 131047 outside the 24 h window,
    # 131021 sender is the recipient.
    codes = frozenset({131021, 131026, 131030, 131047})


_BY_CODE: dict[int, type[WhatsAppError]] = {
    code: cls
    for cls in (ThrottlingError, ServerError, AuthorizationError, InvalidParameterError, RecipientError)
    for code in cls.codes
}


def error_from_response(status: int, body: Any) -> WhatsAppError:
    """The typed error for a non-2xx Graph answer: by `error.code` first, then by HTTP status."""
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    code = error.get("code")
    code = code if isinstance(code, int) else None
    message = str(error.get("message") or f"HTTP {status}")[:500]
    details = (error.get("error_data") or {}).get("details") if isinstance(error.get("error_data"), dict) else None
    kwargs: dict[str, Any] = {
        "code": code, "status": status, "fbtrace_id": error.get("fbtrace_id"), "details": details,
    }
    if code is not None and code in _BY_CODE:
        return _BY_CODE[code](message, **kwargs)
    if status == 429:
        return ThrottlingError(message, **kwargs)
    if status >= 500:
        return ServerError(message, **kwargs)
    if status in (401, 403):
        return AuthorizationError(message, **kwargs)
    return PermanentWhatsAppError(message, **kwargs)
