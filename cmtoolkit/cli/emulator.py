"""``cmtoolkit emulator serve``: run the emulator until SIGTERM/SIGINT, then save its state."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType
from typing import TYPE_CHECKING

from cmtoolkit.emulator import (
    DEFAULT_API_KEY,
    DEFAULT_LISTS,
    Emulator,
    FaultSpecError,
    RateLimit,
    parse_faults,
)
from cmtoolkit.emulator import faults as faults_module
from cmtoolkit.errors import ConfigurationError

if TYPE_CHECKING:
    from cmtoolkit.cli.arguments import Subcommands


def register(subparsers: Subcommands) -> None:
    emulator = subparsers.add_parser("emulator", help="the local Campaign Monitor API emulator")
    sub = emulator.add_subparsers(dest="emulator_command", metavar="COMMAND")
    sub.required = True
    serve = sub.add_parser(
        "serve",
        help="serve the emulated API; prints the base URL as the first line",
        description="Serve a seeded Campaign Monitor API v3.3 on loopback. The first stdout "
        "line is the base URL. Runs until SIGTERM/SIGINT, then writes --state.",
        epilog="Fault SPEC:\n" + (faults_module.__doc__ or ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    serve.add_argument("--seed-size", type=int, default=1000, help="subscribers (0-10,000,000)")
    serve.add_argument("--seed", type=int, default=0)
    serve.add_argument("--person-offset", type=int, default=0, help="first synthetic person")
    serve.add_argument(
        "--lists",
        default=",".join(DEFAULT_LISTS),
        help="comma-separated titles of the seeded lists (the first holds everybody)",
    )
    serve.add_argument(
        "--api-key", default=DEFAULT_API_KEY, help="accepted API key (default: a fixed dev key)"
    )
    serve.add_argument("--oauth-client-id")
    serve.add_argument("--oauth-client-secret")
    serve.add_argument("--oauth-redirect-uri")
    serve.add_argument("--token-lifetime", type=int, default=1209600, help="seconds")
    serve.add_argument("--state", help="state file: loaded at start, written on exit and save")
    serve.add_argument("--faults", help="fault SPEC (see below)")
    serve.add_argument(
        "--page-cache-mb",
        type=int,
        default=16,
        help="rendered pages kept until the next write (default 16; a 1M list is ~430)",
    )
    serve.add_argument(
        "--rate-limit", type=int, help="max API requests per --rate-window seconds (default off)"
    )
    serve.add_argument("--rate-window", type=float, default=60.0, help="seconds (default 60)")
    serve.add_argument(
        "--latency",
        type=float,
        default=0.0,
        metavar="MS",
        help="milliseconds every API answer waits, as over a wide-area network (default 0)",
    )
    serve.add_argument(
        "--jitter", type=float, default=0.0, metavar="MS", help="± milliseconds around --latency"
    )
    serve.add_argument(
        "--no-rate-headers", action="store_true", help="429s without X-RateLimit-* headers"
    )
    serve.set_defaults(func=serve_command)


def serve_command(args: argparse.Namespace) -> int:
    if not 0 <= args.seed_size <= 10_000_000:
        raise ConfigurationError("--seed-size must be between 0 and 10,000,000")
    try:
        parse_faults(args.faults)
    except FaultSpecError as exc:
        raise ConfigurationError(f"--faults: {exc}") from None
    if not (0 <= args.latency <= 600_000 and 0 <= args.jitter <= 600_000):
        raise ConfigurationError("--latency and --jitter must be between 0 and 600000 ms")
    if args.rate_limit is not None and (args.rate_limit < 1 or args.rate_window <= 0):
        raise ConfigurationError("--rate-limit must be at least 1 and --rate-window positive")
    oauth = (args.oauth_client_id, args.oauth_client_secret, args.oauth_redirect_uri)
    if any(oauth) and not all(oauth):
        raise ConfigurationError(
            "--oauth-client-id, --oauth-client-secret and --oauth-redirect-uri go together"
        )
    emu = Emulator(
        seed_size=args.seed_size,
        seed=args.seed,
        person_offset=args.person_offset,
        lists=[t.strip() for t in args.lists.split(",") if t.strip()],
        api_key=args.api_key,
        oauth_apps=[oauth] if all(oauth) else [],
        token_lifetime=args.token_lifetime,
        faults=args.faults,
        state_file=args.state,
        prefetch_pages=True,
        freeze_growth=True,
        page_cache_bytes=args.page_cache_mb * 2**20,
        latency=args.latency / 1000,
        jitter=args.jitter / 1000,
        rate_limit=RateLimit(args.rate_limit, args.rate_window, not args.no_rate_headers)
        if args.rate_limit
        else None,
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        url = emu.start(args.host, args.port)
        print(url, flush=True)
        print(f"control API: {emu.origin}/_emulator/state", file=sys.stderr, flush=True)
        while not stop.wait(0.2):
            pass
    finally:
        emu.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 0
