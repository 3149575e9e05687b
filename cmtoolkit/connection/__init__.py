"""The connection: its YAML file, validation, status and the Campaign Monitor login.

A connection (``connections/<slug>.yaml``) says which credential and client to use, and what to
import, export and expose for targeting. It never holds a secret, only a credential reference.
"""

from cmtoolkit.connection.client import client_for, client_for_credential
from cmtoolkit.connection.file import (
    connection_path,
    connections_dir,
    dump_connection,
    find_connection,
    iter_connections,
    list_connections,
    load_connection,
    save_connection,
    slugify,
)
from cmtoolkit.connection.model import (
    CONSENT_TO_TRACK,
    ON_LEAVE,
    RULES,
    VALUE_TYPES,
    CampaignMonitorSettings,
    Connection,
    ExportGoal,
    ExportMapping,
    Identifier,
    ImportGoal,
    ImportMapping,
    TargetingGoal,
)
from cmtoolkit.connection.parsing import parse_connection
from cmtoolkit.connection.status import (
    CampaignMonitorClient,
    Problem,
    ProfileStore,
    Status,
    connection_status,
)

__all__ = [
    "CONSENT_TO_TRACK",
    "ON_LEAVE",
    "RULES",
    "VALUE_TYPES",
    "CampaignMonitorClient",
    "CampaignMonitorSettings",
    "Connection",
    "ExportGoal",
    "ExportMapping",
    "Identifier",
    "ImportGoal",
    "ImportMapping",
    "Problem",
    "ProfileStore",
    "Status",
    "TargetingGoal",
    "client_for",
    "client_for_credential",
    "connection_path",
    "connection_status",
    "connections_dir",
    "dump_connection",
    "find_connection",
    "iter_connections",
    "list_connections",
    "load_connection",
    "parse_connection",
    "save_connection",
    "slugify",
]
