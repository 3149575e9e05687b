"""cmtoolkit: Campaign Monitor ⇄ DuckDB profile-store sync, driven from JupyterLab.

The face: :class:`Workspace` (everything a notebook or script starts from), ``__version__`` and
the error tree (:mod:`cmtoolkit.errors`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cmtoolkit.errors import (
    AuthenticationError,
    BadRequest,
    CampaignMonitorError,
    CmToolkitError,
    ConfigurationError,
    ConnectionFileError,
    CredentialError,
    LoadError,
    NotFound,
    OAuthError,
    PermissionDenied,
    RateLimited,
    RequestTimeout,
    RunError,
    RunInProgress,
    SchemaError,
    ServerError,
    StoreError,
    StoreLocked,
    TokenExpired,
    TokenInvalid,
    TokenRevoked,
    TransportError,
)

__version__ = "0.1.0"
__all__ = [
    "AuthenticationError",
    "BadRequest",
    "CampaignMonitorError",
    "CmToolkitError",
    "ConfigurationError",
    "ConnectionFileError",
    "CredentialError",
    "LoadError",
    "NotFound",
    "OAuthError",
    "PermissionDenied",
    "RateLimited",
    "RequestTimeout",
    "RunError",
    "RunInProgress",
    "SchemaError",
    "ServerError",
    "StoreError",
    "StoreLocked",
    "TokenExpired",
    "TokenInvalid",
    "TokenRevoked",
    "TransportError",
    "Workspace",
    "__version__",
]

if TYPE_CHECKING:
    from cmtoolkit.workspace import Workspace


def __getattr__(name: str) -> type[Workspace]:
    # Lazy: Workspace brings in the sync engine and DuckDB, and importing any light submodule
    # (cmtoolkit.people, cmtoolkit.errors, the emulator process) runs this file first.
    if name == "Workspace":
        from cmtoolkit.workspace import Workspace

        return Workspace
    raise AttributeError(f"module 'cmtoolkit' has no attribute {name!r}")
