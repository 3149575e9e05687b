"""ipywidgets views over a connection, for the analyst notebooks.

One :class:`ConnectionEditor` holds the connection being edited (plain Python, no widget); every
widget is a thin view bound to it, writing the analyst's changes into it and redrawing when it
changes. A save writes ``connections/<name>.yaml``::

    from cmtoolkit.widgets import ConnectionEditor, ListPicker, MappingEditor, PreviewPane
    editor = ConnectionEditor.open("workspace", "demo")
    ListPicker(editor); MappingEditor(editor); PreviewPane(editor, "import")

:mod:`cmtoolkit.widgets.notebook` holds the per-step helpers the notebooks call, interactive or
batch; :func:`publish` shows a run's result with the machine-readable copy ``cmtoolkit run`` reads
back (:func:`published_run`).
"""

from cmtoolkit.widgets.auth import AuthPanel, oauth_app_from_env
from cmtoolkit.widgets.debounce import Debouncer, KernelScheduler, ManualScheduler
from cmtoolkit.widgets.editor import Catalog, ConnectionEditor
from cmtoolkit.widgets.exporting import ExportEditor, ExportMappingRows, TargetingEditor
from cmtoolkit.widgets.lists import ListPicker, ListSelect
from cmtoolkit.widgets.mappings import IdentifierLinker, MappingEditor
from cmtoolkit.widgets.preview import HistoryView, PreviewPane, RunPanel
from cmtoolkit.widgets.progress import PlainProgress, TqdmProgress, progress_callback
from cmtoolkit.widgets.published import RESULT_MIME, publish, published_run, run_from_dict
from cmtoolkit.widgets.status import SaveBar, StatusBar
from cmtoolkit.widgets.view import View

__all__ = [
    "RESULT_MIME",
    "AuthPanel",
    "Catalog",
    "ConnectionEditor",
    "Debouncer",
    "ExportEditor",
    "ExportMappingRows",
    "HistoryView",
    "IdentifierLinker",
    "KernelScheduler",
    "ListPicker",
    "ListSelect",
    "ManualScheduler",
    "MappingEditor",
    "PlainProgress",
    "PreviewPane",
    "RunPanel",
    "SaveBar",
    "StatusBar",
    "TargetingEditor",
    "TqdmProgress",
    "View",
    "oauth_app_from_env",
    "progress_callback",
    "publish",
    "published_run",
    "run_from_dict",
]
