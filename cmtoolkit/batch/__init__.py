"""Batch runs: papermill-executed goal notebooks, reports, the run index, schedules and alerts.

``run_connection`` is what ``cmtoolkit run`` does; ``run_goal_in_notebook`` is the one call a goal
notebook makes to run (or preview) its goal, show the outcome as static tables and hand the
result to the batch runner; ``progress_callback`` gives the engine's progress to tqdm or plain
lines.
"""

from __future__ import annotations

import json
from typing import Any

from cmtoolkit.batch.progress import progress_callback

__all__ = [
    "display_result",
    "progress_callback",
    "run_connection",
    "run_goal_in_notebook",
]


def __getattr__(name: str) -> Any:
    if name == "run_connection":
        from cmtoolkit.batch.runner import run_connection

        return run_connection
    raise AttributeError(name)


def run_goal_in_notebook(
    workspace: Any,
    connection: str,
    goal: str,
    *,
    dry_run: bool = False,
    full: bool = False,
    interactive: bool = True,
) -> list[Any]:
    """Run (or preview) ``goal`` (``all`` = every configured goal); display each result.

    Non-interactive (papermill) runs raise :class:`~cmtoolkit.errors.RunError` on a failure, so
    the notebook, and ``cmtoolkit run``, fail.
    """
    from cmtoolkit.errors import RunError
    from cmtoolkit.sync import preview, resolve_goals, sync

    runner = workspace.connection(connection)
    results = []
    for g in resolve_goals(runner.model, goal):
        ctx = runner.context(full=full, progress=progress_callback(interactive=interactive))
        result = preview(ctx, g) if dry_run else sync(ctx, g, raise_on_failure=False)
        display_result(result)
        results.append(result)
        if not result.ok:
            if not interactive:
                raise RunError(f"{g} of {runner.name} failed: {result.error}")
            break
    return results


def display_result(result: Any) -> None:
    """Counts per outcome as a static table, plus the machine-readable result for the runner."""
    import html

    from IPython.display import display

    from cmtoolkit.batch.runner import RESULT_MIME

    data = json.loads(json.dumps(result.to_dict(), default=str))
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td style='text-align:right'>{v:,}</td></tr>"
        for k, v in result.counts.items()
    )
    title = f"{result.goal} {'preview' if result.dry_run else 'run'}: {result.state}"
    table = (
        f"<h3>{html.escape(title)}</h3>"
        f"<table><thead><tr><th>outcome</th><th>rows</th></tr></thead><tbody>{rows}</tbody></table>"
    )
    if result.error:
        table += f"<p><b>Error:</b> <code>{html.escape(result.error)}</code></p>"
    text = f"{title} " + ", ".join(f"{k} {v}" for k, v in result.counts.items())
    display({"text/html": table, "text/plain": text, RESULT_MIME: data}, raw=True)
    samples = getattr(result, "samples", None)
    if samples is not None and getattr(samples, "height", 0):
        display(samples.head(20).to_pandas())
