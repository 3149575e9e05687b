"""Where a notebook's ``workspace`` parameter points, whichever folder the notebook was opened in.

JupyterLab starts a kernel in the notebook's own folder (``notebooks/``), papermill in the batch
job's; the workspace ``make demo`` builds is ``<repository>/workspace``. So a relative name is
looked up from the kernel's folder upwards to the repository root, and the default name
``workspace`` gives way to ``$CMTOOLKIT_WORKSPACE`` when that is set (as ``cmtoolkit demo
--serve`` does).
"""

from __future__ import annotations

import os
from pathlib import Path

from cmtoolkit.errors import ConfigurationError

WORKSPACE_ENV = "CMTOOLKIT_WORKSPACE"
DEFAULT_WORKSPACE = "workspace"
ROOT_MARKERS = ("pyproject.toml", ".git")


def resolve_workspace(value: str | os.PathLike[str], *, cwd: Path | None = None) -> Path:
    """The workspace folder ``value`` names; :class:`ConfigurationError` naming where it looked.

    An absolute path is taken as it is. ``workspace`` (the notebooks' default) is
    ``$CMTOOLKIT_WORKSPACE`` when set. Any other relative path is the first existing folder of
    that name in ``cwd`` or one of its parents, up to the repository root.
    """
    path = Path(value).expanduser()
    if path.is_absolute():
        return path
    env = os.environ.get(WORKSPACE_ENV)
    if env and str(value) == DEFAULT_WORKSPACE:
        return Path(env).expanduser().resolve()
    here = (cwd or Path.cwd()).resolve()
    tried = []
    for folder in (here, *here.parents):
        candidate = folder / path
        tried.append(str(candidate))
        if candidate.is_dir():
            return candidate
        if any((folder / m).exists() for m in ROOT_MARKERS):
            break
    raise ConfigurationError(
        f"workspace {str(value)!r} not found (looked in {', '.join(tried)}); build one with "
        f"'make demo' (or 'cmtoolkit demo'), set ${WORKSPACE_ENV}, or give the folder's full "
        "path in the notebook's workspace parameter"
    )
