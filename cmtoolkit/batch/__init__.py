"""Batch runs: papermill-executed goal notebooks, reports, the run index, schedules and alerts.

``run_connection`` is what ``cmtoolkit run`` does. A goal notebook runs its goal with
:func:`cmtoolkit.widgets.notebook.run_step`, the one notebook run path.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from cmtoolkit.batch.alerts import AlertSettings
from cmtoolkit.batch.scheduler import Scheduler, scheduled_connections

if TYPE_CHECKING:
    from cmtoolkit.batch.reports import Report, read_reports, write_index
    from cmtoolkit.batch.runner import BatchResult, run_connection

__all__ = [
    "AlertSettings",
    "BatchResult",
    "Report",
    "Scheduler",
    "read_reports",
    "run_connection",
    "scheduled_connections",
    "write_index",
]

# The runner and the reports bring in papermill, nbconvert and ipywidgets (seconds of start-up);
# every CLI command imports the scheduler through this package, so those two load on first use.
_LAZY = {
    "BatchResult": "cmtoolkit.batch.runner",
    "run_connection": "cmtoolkit.batch.runner",
    "Report": "cmtoolkit.batch.reports",
    "read_reports": "cmtoolkit.batch.reports",
    "write_index": "cmtoolkit.batch.reports",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
