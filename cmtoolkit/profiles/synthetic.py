"""Synthetic profile stores, deterministic under a seed and paired with the emulator's accounts.

Profile ``p{person:08d}`` is person ``person`` of :func:`cmtoolkit.people.people`, so a store
of persons ``[0, P)`` and an emulator account seeded with the same seed and
``person_offset = emulator_person_offset(P, S, k)`` share exactly ``k`` people (by email). A
``email_noise`` fraction of profiles carry their email in another case and/or with surrounding
spaces, so matching must trim and case-fold.

Every value is a vectorised function of ``(seed, person, stream)``: a chunk of persons is the same
whichever chunking produced it, and 10 M profiles stream to Parquet in bounded memory.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from cmtoolkit import people
from cmtoolkit.errors import ConfigurationError

CITIES = (
    ("Amsterdam", "Netherlands"), ("Rotterdam", "Netherlands"), ("Berlin", "Germany"),
    ("München", "Germany"), ("Paris", "France"), ("Lyon", "France"), ("London", "United Kingdom"),
    ("Manchester", "United Kingdom"), ("Sydney", "Australia"), ("Melbourne", "Australia"),
    ("Tokyo", "Japan"), ("Osaka", "Japan"), ("Auckland", "New Zealand"), ("São Paulo", "Brazil"),
    ("New York", "United States"), ("San Francisco", "United States"),
)  # fmt: skip
INTERESTS = ("sports", "music", "travel", "food & drink", "technology", "fashion", "café culture")
TIERS = ("bronze", "silver", "gold", "platinum")
TIER_CUTS = (0.50, 0.80, 0.95)  # cumulative shares of bronze, silver, gold; the rest platinum
OBJECTIVES = ("email_marketing", "analytics")
INTERACTIONS = (
    "home", "pricing", "product/shoes", "product/bags", "blog/spring-sale", "checkout",
    "account/settings", "support/returns",
)  # fmt: skip
PROPERTY_TYPES = {
    "email": "email", "full_name": "text", "first_name": "text", "last_name": "text",
    "city": "text", "country": "text", "newsletter": "text", "tier": "text", "points": "number",
    "last_order": "date", "birthday": "date", "signup_at": "datetime", "interests": "text",
    "vip": "boolean", "consented_objectives": "text", "refused_objectives": "text",
}  # fmt: skip

_DAY = 86_400
_EPOCH_2024 = dt.date(2024, 1, 1)


def profile_ids(persons: np.ndarray) -> pl.Series:
    return pl.Series("profile_id", persons).cast(pl.Utf8).str.zfill(8).str.replace(r"^", "p")


def profiles_frame(seed: int, start: int, stop: int, *, email_noise: float = 0.0) -> pl.DataFrame:
    """Profiles of persons ``[start, stop)`` with properties of every type."""
    base = people.people(seed, start, stop)
    index = base.get_column("person").to_numpy()

    def u(stream: int) -> np.ndarray:
        return people.uniform(seed, index, 100 + stream)

    # Emails: clean, or (for email_noise of them) upper-cased and/or padded with spaces.
    noisy = u(1) < email_noise
    style = u(2)
    email = base.get_column("email")
    upper = email.str.to_uppercase()
    padded = pl.Series(np.where(style < 0.5, "  ", " ")) + email.str.to_titlecase() + " "
    email = pl.Series("email", np.where(~noisy, email, np.where(style < 0.34, upper, padded)))

    city_codes = (people.mix(seed, index, 103) % np.uint64(len(CITIES))).astype(np.int64)
    tiers = np.searchsorted(np.array(TIER_CUTS), u(4), side="right")
    points = np.floor(-np.log1p(-u(5)) * 400).astype(np.int64)
    last_order_days = (u(6) * 900).astype(np.int64)
    has_order = u(7) < 0.9
    birthday_days = (u(8) * 55 * 365).astype(np.int64)
    signup_seconds = (u(9) * 8 * 365 * _DAY).astype(np.int64)
    interest_flags = [u(20 + i) < 0.25 for i in range(len(INTERESTS))]
    consented = [u(40) < 0.7, u(41) < 0.5]
    refused = [u(42) < 0.08, u(43) < 0.05]

    def tag_list(flags: list[np.ndarray], names: tuple[str, ...]) -> pl.Expr:
        return pl.concat_list(
            [
                pl.when(pl.lit(pl.Series(f))).then(pl.lit(n))
                for f, n in zip(flags, names, strict=True)
            ]
        ).list.drop_nulls()

    frame = pl.DataFrame(
        {
            "profile_id": profile_ids(index),
            "email": email,
            "first_name": base.get_column("first_name"),
            "last_name": base.get_column("last_name"),
            "city": pl.Series([c for c, _ in CITIES]).gather(city_codes),
            "country": pl.Series([c for _, c in CITIES]).gather(city_codes),
            "newsletter": np.where(u(10) < 0.6, "yes", "no"),
            "tier": pl.Series(list(TIERS)).gather(tiers),
            "points": points,
            "last_order": pl.Series(np.where(has_order, last_order_days, -1)),
            "birthday": birthday_days,
            "signup_at": signup_seconds,
            "vip": (points >= 2000) | (u(11) < 0.02),
        }
    )
    return frame.select(
        "profile_id",
        "email",
        (pl.col("first_name") + " " + pl.col("last_name")).alias("full_name"),
        "first_name",
        "last_name",
        "city",
        "country",
        "newsletter",
        "tier",
        "points",
        pl.when(pl.col("last_order") >= 0)
        .then(pl.lit(_EPOCH_2024) + pl.duration(days=pl.col("last_order")))
        .alias("last_order")
        .cast(pl.Date),
        (pl.lit(dt.date(1950, 1, 1)) + pl.duration(days=pl.col("birthday")))
        .cast(pl.Date)
        .alias("birthday"),
        (pl.lit(dt.datetime(2018, 1, 1)) + pl.duration(seconds=pl.col("signup_at")))
        .cast(pl.Datetime("us"))
        .alias("signup_at"),
        tag_list(interest_flags, INTERESTS).alias("interests"),
        "vip",
        tag_list(consented, OBJECTIVES).alias("consented_objectives"),
        tag_list(refused, OBJECTIVES).alias("refused_objectives"),
    )


def write_profiles(
    path: str | os.PathLike[str],
    size: int,
    *,
    seed: int = 0,
    email_noise: float = 0.0,
    chunk_size: int = 250_000,
) -> Path:
    """Stream ``size`` profiles (persons ``[0, size)``) to a Parquet file, chunk by chunk."""
    if size < 0 or size > 10_000_000:
        raise ConfigurationError(f"--size must be between 0 and 10,000,000, not {size}")
    return _write_parquet(
        path,
        size,
        chunk_size,
        lambda start, stop: profiles_frame(seed, start, stop, email_noise=email_noise),
    )


def interactions_frame(seed: int, start: int, stop: int, *, mean: float = 2.0) -> pl.DataFrame:
    """Viewed interactions of persons ``[start, stop)``: 0 to 2×``mean`` each, in 2025–2026."""
    index = np.arange(start, stop, dtype=np.int64)
    counts = (people.uniform(seed, index, 200) * (2 * mean + 1)).astype(np.int64)
    person = np.repeat(index, counts)
    # Event j of a person: a stable index (person * 64 + j) for its own random draws.
    offsets = np.arange(len(person)) - np.repeat(np.cumsum(counts) - counts, counts)
    event = person * 64 + offsets
    names = people.pick(seed, event, 201, INTERACTIONS)
    seconds = (people.uniform(seed, event, 202) * 540 * _DAY).astype(np.int64)
    return pl.DataFrame(
        {"profile_id": profile_ids(person), "interaction": names, "seconds": seconds}
    ).select(
        "profile_id",
        "interaction",
        (pl.lit(dt.datetime(2025, 1, 1)) + pl.duration(seconds=pl.col("seconds")))
        .cast(pl.Datetime("us"))
        .alias("viewed_at"),
    )


def write_interactions(
    path: str | os.PathLike[str], size: int, *, seed: int = 0, chunk_size: int = 250_000
) -> Path:
    return _write_parquet(
        path, size, chunk_size, lambda start, stop: interactions_frame(seed, start, stop)
    )


def _write_parquet(
    path: str | os.PathLike[str],
    size: int,
    chunk_size: int,
    frame: Callable[[int, int], pl.DataFrame],
) -> Path:
    """One Parquet file of ``frame(start, stop)`` for each chunk of persons ``[0, size)``.

    Chunk by chunk, so ten million profiles never sit in memory at once; an empty ``size``
    still writes the (empty) schema.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer: pq.ParquetWriter | None = None
    try:
        for start in range(0, max(size, 1), chunk_size):
            table = frame(start, min(start + chunk_size, size)).to_arrow()
            if writer is None:
                writer = pq.ParquetWriter(str(path), table.schema)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    return path


def emulator_person_offset(profiles: int, subscribers: int, matching: int | float) -> int:
    """The emulator ``person_offset`` that makes ``matching`` profiles also subscribers.

    ``matching`` is a number of profiles, or (a float in [0, 1]) a fraction of ``profiles``.
    Seed the emulator with the same seed, ``seed_size=subscribers`` and this offset: its persons
    ``[offset, offset + subscribers)`` overlap the store's ``[0, profiles)`` in exactly that many.
    """
    if isinstance(matching, float):
        if not 0.0 <= matching <= 1.0:
            raise ConfigurationError(f"a matching fraction must be in [0, 1], not {matching}")
        matching = round(matching * profiles)
    if not 0 <= matching <= min(profiles, subscribers):
        raise ConfigurationError(
            f"{matching} matching people do not fit {profiles} profiles and "
            f"{subscribers} subscribers"
        )
    # With matching == 0 the account starts right after the store's persons.
    return profiles - matching


SAMPLE_SEGMENTS_YAML = """\
# Segments over the synthetic profile store (cmtoolkit profiles generate).
newsletter_optin:
  all:
    - {property: newsletter, equals: "yes"}
    - {consented: email_marketing}
vip:
  any:
    - {property: points, gte: 1000}
    - {property: tier, in: [gold, platinum]}
churn_risk:
  not: {property: last_order, after: "2026-01-01"}
music_lovers:
  all:
    - {property: interests, contains: music}
    - {property: country, in: [Germany, Netherlands, France]}
analytics_ok:
  consented: analytics
"""


def write_sample_segments(path: str | os.PathLike[str]) -> Path:
    """Write the sample ``segments.yaml`` (five segments meaningful on the generated data)."""
    path = Path(path)
    path.write_text(SAMPLE_SEGMENTS_YAML, encoding="utf-8")
    return path
