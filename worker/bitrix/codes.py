"""The Bitrix24 error codes callq knows: the REST API's (https://apidocs.bitrix24.com/error-codes.html)
and its OAuth server's (https://apidocs.bitrix24.com/settings/oauth/error-codes.html).

Bitrix24 sends codes in either case (``expired_token``, ``QUERY_LIMIT_EXCEEDED``): they are compared
case-insensitively, through :meth:`BitrixCode.of`. A code callq does not know stays the text it was
(an outcome carries it as sent), and is classified permanent and logged in full.
"""

from __future__ import annotations

from enum import StrEnum


class BitrixCode(StrEnum):
    """A Bitrix24 error code (the value: lower case)."""

    QUERY_LIMIT_EXCEEDED = "query_limit_exceeded"
    OPERATION_TIME_LIMIT = "operation_time_limit"
    OVERLOAD_LIMIT = "overload_limit"
    EXPIRED_TOKEN = "expired_token"
    NO_AUTH_FOUND = "no_auth_found"
    INVALID_TOKEN = "invalid_token"
    INVALID_CREDENTIALS = "invalid_credentials"
    INSUFFICIENT_SCOPE = "insufficient_scope"
    AUTHORIZATION_ERROR = "authorization_error"
    PORTAL_DELETED = "portal_deleted"
    WRONG_AUTH_TYPE = "wrong_auth_type"
    USER_ACCESS_ERROR = "user_access_error"
    ERROR_OAUTH = "error_oauth"
    APPLICATION_NOT_FOUND = "application_not_found"
    PAYMENT_REQUIRED = "payment_required"
    INVALID_GRANT = "invalid_grant"
    INVALID_CLIENT = "invalid_client"
    INVALID_SCOPE = "invalid_scope"
    UNAUTHORIZED_CLIENT = "unauthorized_client"
    UNSUPPORTED_GRANT_TYPE = "unsupported_grant_type"
    INTERNAL_SERVER_ERROR = "internal_server_error"
    ERROR_UNEXPECTED_ANSWER = "error_unexpected_answer"
    ERROR_CORE = "error_core"
    ACCESS_DENIED = "access_denied"
    ERROR_METHOD_NOT_FOUND = "error_method_not_found"
    INVALID_REQUEST = "invalid_request"
    METHOD_CONFIRM_WAITING = "method_confirm_waiting"
    METHOD_CONFIRM_DENIED = "method_confirm_denied"
    CALLBACK_NOT_STARTED = "callback_not_started"
    """callq's own: an answer whose result does not say the callback started."""
    OAUTH_UNAVAILABLE = "oauth_unavailable"
    """callq's own: the OAuth token endpoint could not be reached (nothing was sent)."""

    @classmethod
    def of(cls, code: str | None) -> BitrixCode | None:
        """The known code ``code`` is (any case), or None."""
        try:
            return cls((code or "").strip().lower())
        except ValueError:
            return None
