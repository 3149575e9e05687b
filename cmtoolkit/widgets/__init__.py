"""ipywidgets views over a connection, for the analyst notebooks.

One :class:`ConnectionEditor` holds the connection being edited (plain Python, no widget); every
widget is a thin view bound to it, writing the analyst's changes into it and redrawing when it
changes. A save writes ``connections/<name>.yaml``::

    from cmtoolkit.widgets import ConnectionEditor, ListPicker, MappingEditor, PreviewPane
    editor = ConnectionEditor.open("workspace", "demo")
    ListPicker(editor); MappingEditor(editor); PreviewPane(editor, "import")

:mod:`cmtoolkit.widgets.notebook` holds the per-step helpers the notebooks call, interactive or
batch.
"""

from cmtoolkit.widgets.auth import AuthPanel, oauth_app_from_env
from cmtoolkit.widgets.debounce import Debouncer, KernelScheduler, ManualScheduler
from cmtoolkit.widgets.editor import Catalog, ConnectionEditor
from cmtoolkit.widgets.exporting import ExportEditor, ExportMappingRows, TargetingEditor
from cmtoolkit.widgets.lists import ListPicker, ListSelect
from cmtoolkit.widgets.mappings import IdentifierLinker, MappingEditor
from cmtoolkit.widgets.preview import HistoryView, PreviewPane, RunPanel
from cmtoolkit.widgets.status import SaveBar, StatusBar
from cmtoolkit.widgets.view import View

__all__ = [
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
    "PreviewPane",
    "RunPanel",
    "SaveBar",
    "StatusBar",
    "TargetingEditor",
    "View",
    "oauth_app_from_env",
]
