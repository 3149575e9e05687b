"""The set-up the import benchmarks share (``import.py``, ``wan.py``, ``scale.py``, ``peers.py``):
one emulated list of N subscribers in every state, a workspace of N synthetic profiles half of
whom are subscribers, and the connection that imports one into the other.

The scripts run from ``bench/`` (``python bench/<name>.py``), so this module is importable as
``common`` from any of them.
"""

from __future__ import annotations

import contextlib
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from cmtoolkit.campaign_monitor import ApiKeyAuth, CampaignMonitor
from cmtoolkit.connection.model import (
    CampaignMonitorSettings,
    Connection,
    Identifier,
    ImportGoal,
    ImportMapping,
)
from cmtoolkit.emulator import DEFAULT_API_KEY
from cmtoolkit.profiles.synthetic import emulator_person_offset, write_profiles
from cmtoolkit.secret import Secret
from cmtoolkit.workspace import Workspace

STATES = ("Active", "Unconfirmed", "Unsubscribed", "Bounced", "Deleted")
MAPPINGS = (
    ImportMapping("Name", "full_name", "set_if_empty"),
    ImportMapping("website", "website", "set"),
    ImportMapping("loyalty points", "points", "sum"),
    ImportMapping("birthday", "birthday", "set"),
    ImportMapping("tier", "cm_tier", "set"),
    ImportMapping("interests", "interests", "add"),
    ImportMapping("country", "cm_country", "set"),
)
#: Rendered bytes a subscriber takes in the emulator's page cache, with some room.
CACHE_BYTES_PER_SUBSCRIBER = 600


def peak_rss_mib() -> float:
    """This process's peak RSS since it started. Linux's ``ru_maxrss`` survives ``exec``: a
    child started by a parent holding 1 GB reports at least that. ``VmHWM`` is the new
    program's own."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds(pid: int | None = None) -> float:
    """Processor seconds (user + system, every thread) a process has used: this one by default,
    or a child such as the emulator, read from ``/proc``."""
    if pid is None:
        return time.process_time()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cache_mb(size: int) -> int:
    """A page cache that holds every rendered page of a list of ``size``."""
    return max(64, size * CACHE_BYTES_PER_SUBSCRIBER // 2**20)


def start_emulator(
    size: int, seed: int, offset: int, cache_mb: int = 16
) -> tuple[subprocess.Popen[str], str]:
    """``cmtoolkit emulator serve`` in a subprocess, one list ("Newsletter") of ``size``
    subscribers from person ``offset`` on; returns the process and its API base URL."""
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "cmtoolkit.cli", "emulator", "serve", "--port", "0",
            "--seed-size", str(size), "--seed", str(seed), "--person-offset", str(offset),
            "--lists", "Newsletter", "--page-cache-mb", str(cache_mb),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def person_offset(size: int) -> int:
    """The emulator's first person, so that half of its subscribers are in the store."""
    return emulator_person_offset(size, size, 0.5)


def make_workspace(folder: Path, size: int, seed: int) -> Workspace:
    """A workspace in ``folder`` holding ``size`` synthetic profiles (5 % of the emails differ
    in case or surrounding spaces), built in a child process so that generating and loading
    them does not count in the benchmark's own peak RSS."""
    if workspace_process(folder, size, seed).wait():
        raise RuntimeError("building the benchmark's workspace failed")
    return Workspace(folder / "ws")


def workspace_process(folder: Path, size: int, seed: int) -> subprocess.Popen[bytes]:
    """:func:`make_workspace` started, not waited for (e.g. while the emulator seeds);
    the workspace is ``folder / "ws"`` once the process has ended with 0."""
    return subprocess.Popen(
        [sys.executable, __file__, "workspace", str(folder), str(size), str(seed)]
    )


def _build_workspace(folder: Path, size: int, seed: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    parquet = write_profiles(folder / "profiles.parquet", size, seed=seed, email_noise=0.05)
    Workspace.create(folder / "ws").store.load(parquet)
    parquet.unlink()


def client(base_url: str, max_in_flight: int = 4) -> CampaignMonitor:
    return CampaignMonitor(
        ApiKeyAuth(Secret(DEFAULT_API_KEY)), base_url=base_url, max_in_flight=max_in_flight
    )


def the_list(cm: CampaignMonitor) -> tuple[str, str]:
    """The emulator's one client and its one list: ``(client_id, list_id)``."""
    (account,) = cm.clients()
    (lst,) = cm.lists(account.client_id)
    return account.client_id, lst.list_id


def import_connection(
    name: str, client_id: str, list_id: str, max_in_flight: int = 4
) -> Connection:
    """Every state of the list into the store by email, creating profiles, with
    :data:`MAPPINGS` and the list's name."""
    return Connection(
        name=name,
        campaign_monitor=CampaignMonitorSettings("default", client_id, max_in_flight=max_in_flight),
        import_=ImportGoal(
            lists=(list_id,),
            states=STATES,
            identifiers=(Identifier("EmailAddress", "email"),),
            allow_create=True,
            save_list_names_to="cm_lists",
            mappings=MAPPINGS,
        ),
    )


def read_all(cm: CampaignMonitor, list_id: str) -> int:
    """Every subscriber of the list through the client (which renders them into the emulator's
    cache the first time); returns how many."""
    return sum(f.height for _, f in cm.subscriber_frames_many([(list_id, s) for s in STATES]))


if __name__ == "__main__" and sys.argv[1:2] == ["workspace"]:
    _build_workspace(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
