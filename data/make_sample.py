"""Regenerate the sample data in this folder (run once; the output is committed).

    .venv/bin/python data/make_sample.py

Names and emails come from ``cmtoolkit.people`` through the synthetic generator, under a fixed
seed, so running it again writes the same files.
"""

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl

from cmtoolkit import people
from cmtoolkit.profiles import synthetic

SEED = 2026
SIZE = 300
HERE = Path(__file__).parent
# Last orders: most recent, a long tail back (mean 120 days before this day), 8 % never ordered.
LAST_DAY = dt.date(2026, 11, 30)
index = np.arange(SIZE)
days_ago = np.minimum(-np.log1p(-people.uniform(SEED, index, 900)) * 120, 1000).astype(np.int64)
ordered = people.uniform(SEED, index, 901) >= 0.08
last_order = [
    LAST_DAY - dt.timedelta(days=int(d)) if o else None
    for d, o in zip(days_ago, ordered, strict=True)
]


def piped(name: str) -> pl.Expr:
    """Multiple values pipe-separated, none as an empty cell (how the CSV loader reads them)."""
    return pl.col(name).list.join("|").replace("", None)


profiles = synthetic.profiles_frame(SEED, 0, SIZE).select(
    "profile_id",
    "email",
    "first_name",
    "full_name",
    "city",
    "country",
    "newsletter",
    "tier",
    "points",
    piped("interests"),
    pl.Series("last_order", last_order, dtype=pl.Date),
    piped("consented_objectives"),
    piped("refused_objectives"),
)
profiles.write_csv(HERE / "profiles.csv")

# Every 25th profile: a VIP list kept outside the store, read by a file segment.
vip_ids = profiles.get_column("profile_id").gather_every(25)
pl.DataFrame({"profile_id": vip_ids}).write_csv(HERE / "vip_ids.csv")

synthetic.interactions_frame(SEED, 0, SIZE).sort("profile_id", "viewed_at").write_csv(
    HERE / "interactions.csv", datetime_format="%Y-%m-%d %H:%M:%S"
)
