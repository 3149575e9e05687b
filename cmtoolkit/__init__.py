"""cmtoolkit: Campaign Monitor ⇄ DuckDB profile-store sync, driven from JupyterLab."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cmtoolkit.errors import CmToolkitError

__version__ = "0.1.0"
__all__ = ["CmToolkitError", "Workspace", "__version__"]

if TYPE_CHECKING:
    from cmtoolkit.workspace import Workspace


def __getattr__(name: str) -> Any:
    # Lazy so that `import cmtoolkit` stays cheap in notebooks and the emulator process.
    if name == "Workspace":
        from cmtoolkit.workspace import Workspace

        return Workspace
    raise AttributeError(name)
