"""``cmtoolkit profiles|interactions|segments …``: the profile store from the command line."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from cmtoolkit.cli.arguments import add_workspace_argument, print_json
from cmtoolkit.errors import ConfigurationError
from cmtoolkit.profiles import PROPERTY_TYPES, SegmentInfo, synthetic
from cmtoolkit.workspace import SEGMENTS_TEMPLATE, Workspace

if TYPE_CHECKING:
    from cmtoolkit.cli.arguments import Subcommands


def _print_json(data: object) -> None:
    print_json(data, ensure_ascii=False)


def _types(pairs: list[str]) -> dict[str, str]:
    types: dict[str, str] = {}
    for pair in pairs:
        name, sep, type_ = pair.rpartition("=")
        if not sep or not name:
            raise ConfigurationError(f"--type {pair!r}: write PROPERTY=TYPE, e.g. points=number")
        if type_ not in PROPERTY_TYPES:
            raise ConfigurationError(
                f"--type {pair!r}: unknown type {type_!r}; use one of {', '.join(PROPERTY_TYPES)}"
            )
        types[name] = type_
    return types


def register(subparsers: Subcommands) -> None:
    profiles = subparsers.add_parser("profiles", help="load, inspect and generate profiles")
    psub = profiles.add_subparsers(dest="profiles_command", metavar="COMMAND", required=True)

    p = psub.add_parser("load", help="load profiles from a CSV or Parquet file (upsert)")
    p.add_argument("file")
    p.add_argument("--id-column", default="profile_id", help="the id column (default profile_id)")
    p.add_argument(
        "--type",
        action="append",
        default=[],
        metavar="PROPERTY=TYPE",
        help=f"declare a new property's type ({', '.join(PROPERTY_TYPES)})",
    )
    p.add_argument("--mode", choices=("set", "add"), default="set")
    p.add_argument("--json", action="store_true")
    add_workspace_argument(p)
    p.set_defaults(func=cmd_load)

    p = psub.add_parser("show", help="one profile's properties")
    p.add_argument("id")
    p.add_argument("--json", action="store_true")
    add_workspace_argument(p)
    p.set_defaults(func=cmd_show)

    p = psub.add_parser("find", help="profile ids whose PROPERTY holds VALUE")
    p.add_argument("property")
    p.add_argument("value")
    p.add_argument("--json", action="store_true")
    add_workspace_argument(p)
    p.set_defaults(func=cmd_find)

    p = psub.add_parser("stats", help="counts per property, interactions, segments")
    p.add_argument("--json", action="store_true")
    add_workspace_argument(p)
    p.set_defaults(func=cmd_stats)

    p = psub.add_parser("generate", help="synthetic profiles (to a Parquet file or the store)")
    p.add_argument("--size", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--email-noise", type=float, default=0.0, help="fraction of untidy emails")
    p.add_argument("--out", help="write Parquet here instead of loading into the workspace")
    p.add_argument("--json", action="store_true")
    add_workspace_argument(p)
    p.set_defaults(func=cmd_generate)

    interactions = subparsers.add_parser("interactions", help="viewed interactions")
    isub = interactions.add_subparsers(
        dest="interactions_command", metavar="COMMAND", required=True
    )
    p = isub.add_parser("load", help="load profile_id, interaction, viewed_at rows")
    p.add_argument("file")
    p.add_argument("--json", action="store_true")
    add_workspace_argument(p)
    p.set_defaults(func=cmd_interactions_load)

    segments = subparsers.add_parser("segments", help="segments from segments.yaml")
    ssub = segments.add_subparsers(dest="segments_command", metavar="COMMAND", required=True)
    p = ssub.add_parser("list", help="defined segments with their sizes")
    p.add_argument("--json", action="store_true")
    add_workspace_argument(p)
    p.set_defaults(func=cmd_segments_list)
    p = ssub.add_parser("refresh", help="recompute membership (all segments, or NAME)")
    p.add_argument("name", nargs="?")
    p.add_argument("--json", action="store_true")
    add_workspace_argument(p)
    p.set_defaults(func=cmd_segments_refresh)


def cmd_load(args: argparse.Namespace) -> int:
    ws = Workspace(args.workspace)
    result = ws.store.load(
        Path(args.file), id_column=args.id_column, types=_types(args.type), mode=args.mode
    )
    if args.json:
        _print_json(result.as_dict())
    else:
        new = (
            f"; new properties: {', '.join(result.new_properties)}" if result.new_properties else ""
        )
        print(
            f"loaded {result.rows} profiles ({result.inserted} new, {result.updated} updated)"
            f" into {ws.path}{new}"
        )
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    profile = Workspace(args.workspace).store.get(args.id)
    if profile is None:
        print(f"no profile {args.id!r}", file=sys.stderr)
        return 1
    if args.json:
        _print_json({"profile_id": args.id, "properties": profile})
    else:
        print(f"profile {args.id}")
        for name, values in profile.items():
            print(f"  {name}: {' | '.join(values)}")
    return 0


def cmd_find(args: argparse.Namespace) -> int:
    ids = Workspace(args.workspace).store.find(args.property, args.value)
    if args.json:
        _print_json({"property": args.property, "value": args.value, "profile_ids": ids})
    else:
        for profile_id in ids:
            print(profile_id)
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    stats = Workspace(args.workspace).store.stats()
    if args.json:
        _print_json(stats)
        return 0
    print(f"{stats['profiles']} profiles in {stats['path']} (schema v{stats['schema_version']})")
    for name, info in stats["properties"].items():
        print(f"  {name} ({info['type']}): {info['profiles_with_values']} with values")
    print(f"{stats['interactions']} interactions ({stats['interaction_names']} names)")
    for name, size in stats["segments"].items():
        print(f"  segment {name}: {size}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    if args.out:
        path = synthetic.write_profiles(
            args.out, args.size, seed=args.seed, email_noise=args.email_noise
        )
        summary: dict[str, object] = {"file": str(path), "profiles": args.size, "seed": args.seed}
    else:
        ws = Workspace(args.workspace)
        ws.ensure()
        with tempfile.TemporaryDirectory(dir=ws.path) as tmp:
            profiles = synthetic.write_profiles(
                Path(tmp) / "profiles.parquet",
                args.size,
                seed=args.seed,
                email_noise=args.email_noise,
            )
            interactions = synthetic.write_interactions(
                Path(tmp) / "interactions.parquet", args.size, seed=args.seed
            )
            result = ws.store.load(profiles)
            added = ws.store.load_interactions(interactions)
        text = ws.segments_path.read_text(encoding="utf-8") if ws.segments_path.exists() else ""
        wrote_segments = text.strip() in ("", SEGMENTS_TEMPLATE.strip())
        if wrote_segments:
            synthetic.write_sample_segments(ws.segments_path)
        summary = {
            "workspace": str(ws.path),
            "profiles": result.rows,
            "inserted": result.inserted,
            "updated": result.updated,
            "interactions": added,
            "seed": args.seed,
            "sample_segments": str(ws.segments_path) if wrote_segments else None,
        }
    if args.json:
        _print_json(summary)
    else:
        print(", ".join(f"{k}: {v}" for k, v in summary.items() if v is not None))
    return 0


def cmd_interactions_load(args: argparse.Namespace) -> int:
    added = Workspace(args.workspace).store.load_interactions(Path(args.file))
    if args.json:
        _print_json({"added": added})
    else:
        print(f"added {added} interactions")
    return 0


def _print_segments(infos: list[SegmentInfo]) -> None:
    if not infos:
        print("no segments defined (edit segments.yaml)")
    for info in infos:
        size = "never refreshed" if info.size is None else f"{info.size} members"
        stale = " (definition changed: refresh)" if info.stale and info.size is not None else ""
        print(f"{info.name} [{info.kind}]: {size}{stale}")


def cmd_segments_list(args: argparse.Namespace) -> int:
    ws = Workspace(args.workspace)
    infos = ws.segments.list()
    if args.json:
        _print_json(ws.segments.as_dicts(infos))
    else:
        _print_segments(infos)
    return 0


def cmd_segments_refresh(args: argparse.Namespace) -> int:
    ws = Workspace(args.workspace)
    infos = ws.segments.refresh(args.name)
    if args.json:
        _print_json(ws.segments.as_dicts(infos))
    else:
        _print_segments(infos)
    return 0
