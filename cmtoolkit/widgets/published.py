"""A run's result as a goal notebook shows it, plus the machine-readable copy ``cmtoolkit run``
reads back.

The copy is one display output of type :data:`RESULT_MIME` holding :meth:`Run.to_dict`. The batch
runner needs it only for a dry run: a real run is read from the ledger by the run id it handed
to the notebook.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime

from IPython.display import display
from nbformat import NotebookNode

from cmtoolkit.sync import Run, RunState
from cmtoolkit.widgets.html import result_html

RESULT_MIME = "application/vnd.cmtoolkit.result+json"


def publish(run: Run) -> None:
    """Display ``run`` as HTML and text, with its machine-readable copy."""
    data = json.loads(json.dumps(run.to_dict(), default=str))
    counts = ", ".join(f"{k} {v}" for k, v in run.counts.items())
    kind = "preview" if run.dry_run else "run"
    text = f"{run.goal} {kind}: {run.state} {counts}".rstrip()
    # No duration here: the report's header gives the run's one duration.
    html = result_html(run, duration=False)
    display({"text/html": html, "text/plain": text, RESULT_MIME: data}, raw=True)


def published_run(nb: NotebookNode) -> Run | None:
    """The last run an executed notebook published, or None."""
    for cell in reversed(nb.cells):
        for output in reversed(cell.get("outputs", [])):
            data = output.get("data", {}).get(RESULT_MIME)
            if isinstance(data, Mapping):
                try:
                    return run_from_dict(data)
                except (KeyError, TypeError, ValueError):
                    return None
    return None


def run_from_dict(data: Mapping[str, object]) -> Run:
    """The :class:`Run` that :meth:`Run.to_dict` wrote; extra keys (a report's) are ignored.

    Raises KeyError, TypeError or ValueError when ``data`` is not one.
    """
    counts = data.get("counts") or {}
    details = data.get("details") or {}
    if not isinstance(counts, Mapping) or not isinstance(details, Mapping):
        raise TypeError("counts and details must be mappings")
    ended = data.get("ended_at")
    return Run(
        connection=str(data["connection"]),
        goal=str(data["goal"]),
        state=RunState(str(data["state"])),
        counts={str(k): int(v) for k, v in counts.items()},
        started_at=datetime.fromisoformat(str(data["started_at"])),
        ended_at=datetime.fromisoformat(str(ended)) if ended else None,
        run_id=_text(data.get("run_id")),
        full=bool(data.get("full")),
        dry_run=bool(data.get("dry_run")),
        error=_text(data.get("error")),
        details=dict(details),
    )


def _text(value: object) -> str | None:
    return None if value is None else str(value)


__all__ = ["RESULT_MIME", "publish", "published_run", "run_from_dict"]
