"""An Airflow DAG that runs a cmtoolkit connection nightly (example; not imported by cmtoolkit).

Two ways, pick one:

* ``BashOperator`` calling ``cmtoolkit run`` (recommended): the run lock, the scrubbed report,
  ``reports/index.html``, the ledger and alerts all come with it, and a failed run fails the task
  (exit code 1; 2 for a configuration problem or a run already in progress).
* ``PapermillOperator`` executing the goal notebook directly, for teams that want Airflow to own
  the notebook output. Papermill then writes the raw executed notebook: its parameters stay in
  ``metadata.papermill`` (harmless here, since the parameters are names and paths only, never a
  secret) and nothing is added to the index. The credential is referenced by the connection file
  (``env:CM_API_KEY`` or a credential-store name) and resolved inside the kernel: set the
  variable in the worker's environment, never in ``parameters`` (a templated field that Airflow
  shows in its "Rendered Template" view).

Requires ``apache-airflow`` and ``apache-airflow-providers-papermill`` on the worker, plus the
``cmtoolkit`` Jupyter kernel (``python -m ipykernel install --sys-prefix --name cmtoolkit``).
"""

from __future__ import annotations

from datetime import datetime

from airflow import DAG
from airflow.operators.bash import BashOperator
from airflow.providers.papermill.operators.papermill import PapermillOperator

WORKSPACE = "/srv/cmtoolkit/workspace"
NOTEBOOKS = "/srv/cmtoolkit/notebooks"
CONNECTION = "demo"

with DAG(
    dag_id="cmtoolkit_demo_nightly",
    schedule="0 3 * * *",  # UTC, like the connection file's `schedule`
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,  # one run per connection at a time (cmtoolkit enforces it as well)
    tags=["cmtoolkit"],
) as dag:
    run = BashOperator(
        task_id="cmtoolkit_run",
        bash_command=(
            f"cmtoolkit run {CONNECTION} --goal all --workspace {WORKSPACE} "
            f"--notebooks {NOTEBOOKS} --json"
        ),
    )

    import_notebook = PapermillOperator(
        task_id="import_notebook",
        input_nb=f"{NOTEBOOKS}/02_import.ipynb",
        output_nb=f"{WORKSPACE}/reports/airflow/{{{{ ts_nodash }}}}_import.ipynb",
        kernel_name="cmtoolkit",
        parameters={
            "connection": CONNECTION,
            "workspace": WORKSPACE,
            "interactive": False,
            "goal": "import",
            "dry_run": False,
            "full": False,
        },
    )

    run >> import_notebook  # or keep only the one you use
