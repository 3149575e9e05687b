"""The one exception tree of cmtoolkit.

Every error the toolkit raises derives from :class:`CmToolkitError`, and each message says what to
do next. ``retriable`` tells callers (the client's retry loop, the batch runner) whether trying the
same thing again can succeed.

    CmToolkitError
    ├── ConfigurationError              a file or setting the user must fix
    │   ├── ConnectionFileError         names the file and the key path
    │   └── CredentialError             missing/unknown credential, failed login
    ├── CampaignMonitorError            anything the Campaign Monitor API said or did
    │   ├── TransportError        [R]   no (complete) HTTP answer
    │   │   └── RequestTimeout    [R]   connect or read timeout
    │   ├── RateLimited           [R]   HTTP 429
    │   ├── ServerError           [R]   HTTP 5xx
    │   ├── BadRequest                  HTTP 400 (``code``, ``result_data``)
    │   ├── AuthenticationError         HTTP 401 (codes 50, 100, ...; 101/102 are NotFound)
    │   │   ├── TokenExpired            code 121 (refreshed automatically when possible)
    │   │   ├── TokenInvalid            code 120: reconnect
    │   │   └── TokenRevoked            code 122: reconnect
    │   ├── PermissionDenied            code 60 / HTTP 403
    │   ├── NotFound                    HTTP 404
    │   └── OAuthError                  the token endpoint's ``{"error": ...}`` answer
    ├── StoreError                      the DuckDB profile store
    │   ├── StoreLocked                 lock timeout; names the holding process
    │   ├── SchemaError                 unknown/newer schema version
    │   └── LoadError                   bad input file (line numbers); nothing was loaded
    └── RunError                        a sync run
        └── RunInProgress               another run of the same connection holds the lock

[R] = retriable.
"""

from __future__ import annotations


class CmToolkitError(Exception):
    """Root of every cmtoolkit error."""

    retriable: bool = False


# --- configuration -----------------------------------------------------------------------------


class ConfigurationError(CmToolkitError):
    """Something the user must fix in a file, a setting or the environment."""


class ConnectionFileError(ConfigurationError):
    """A connection file is unreadable or invalid; names the file and the key path."""

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None) -> None:
        self.file = file
        self.key = key
        where = ", ".join(p for p in (file, f"key {key!r}" if key else None) if p)
        super().__init__(f"{where}: {message}" if where else message)


class CredentialError(ConfigurationError):
    """A credential is missing, unknown or unusable."""


# --- Campaign Monitor API ----------------------------------------------------------------------


class CampaignMonitorError(CmToolkitError):
    """An error from (or on the way to) the Campaign Monitor API.

    ``status`` is the HTTP status (None when there was no answer), ``code`` Campaign Monitor's
    error code from the body, ``result_data`` its ``ResultData`` when present.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: int | None = None,
        result_data: object = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.result_data = result_data
        self.method = method
        self.path = path
        super().__init__(message)


class TransportError(CampaignMonitorError):
    """No complete HTTP answer: refused, reset or dropped connection, truncated body.

    ``request_sent`` is False only when the request provably never left (a connect failure), so
    even a non-idempotent call may be retried.
    """

    retriable = True
    request_sent: bool = True


class RequestTimeout(TransportError):
    """The connect or read timeout elapsed."""


class RateLimited(CampaignMonitorError):
    """HTTP 429. ``retry_after`` is seconds to wait when the server said so."""

    retriable = True

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        status: int | None = None,
        code: int | None = None,
        result_data: object = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(
            message, status=status, code=code, result_data=result_data, method=method, path=path
        )


class ServerError(CampaignMonitorError):
    """HTTP 5xx. ``retry_after`` is seconds to wait when the server said so."""

    retriable = True
    retry_after: float | None = None


class BadRequest(CampaignMonitorError):
    """HTTP 400: the request was refused as invalid (see ``code``)."""


class AuthenticationError(CampaignMonitorError):
    """HTTP 401: the credential was refused."""


class TokenExpired(AuthenticationError):
    """Code 121: the OAuth access token expired and could not be refreshed."""


class TokenInvalid(AuthenticationError):
    """Code 120: the OAuth access token is not known; reconnect."""


class TokenRevoked(AuthenticationError):
    """Code 122: the OAuth access token was revoked; reconnect."""


class PermissionDenied(CampaignMonitorError):
    """Code 60 / HTTP 403: the credential lacks a permission for this resource."""


class NotFound(CampaignMonitorError):
    """HTTP 404."""


class OAuthError(CampaignMonitorError):
    """The OAuth token endpoint refused a grant (``error``/``error_description``)."""


# --- profile store -----------------------------------------------------------------------------


class StoreError(CmToolkitError):
    """An error of the DuckDB profile store."""


class StoreLocked(StoreError):
    """The store file stayed locked by another process past the lock timeout."""

    retriable = True

    def __init__(self, message: str, *, holder_pid: int | None = None) -> None:
        self.holder_pid = holder_pid
        super().__init__(message)


class SchemaError(StoreError):
    """The store's schema version is unknown or newer than this toolkit."""


class LoadError(StoreError):
    """An input file is invalid; ``problems`` lists ``(line, message)``. Nothing was loaded."""

    def __init__(self, message: str, *, problems: list[tuple[int | None, str]] | None = None):
        self.problems = problems or []
        super().__init__(message)


# --- runs --------------------------------------------------------------------------------------


class RunError(CmToolkitError):
    """A sync run failed."""


class RunInProgress(RunError):
    """Another run of the same connection is in progress."""
