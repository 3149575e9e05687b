from __future__ import annotations

import polars as pl
import pytest

from cmtoolkit import people as people_module
from cmtoolkit.errors import ConfigurationError
from cmtoolkit.profiles.synthetic import (
    emulator_person_offset,
    interactions_frame,
    profiles_frame,
    write_interactions,
    write_profiles,
)


def test_deterministic_and_chunk_independent(tmp_path):
    whole = profiles_frame(3, 0, 1000, email_noise=0.2)
    assert whole.equals(profiles_frame(3, 0, 1000, email_noise=0.2))
    parts = pl.concat(
        [profiles_frame(3, 0, 333, email_noise=0.2), profiles_frame(3, 333, 1000, email_noise=0.2)]
    )
    assert whole.equals(parts)
    assert not whole.equals(profiles_frame(4, 0, 1000, email_noise=0.2))
    path = write_profiles(tmp_path / "p.parquet", 1000, seed=3, email_noise=0.2, chunk_size=300)
    assert pl.read_parquet(path).equals(whole)
    ipath = write_interactions(tmp_path / "i.parquet", 1000, seed=3, chunk_size=300)
    assert pl.read_parquet(ipath).equals(interactions_frame(3, 0, 1000))


def test_names_and_emails_come_from_shared_people():
    frame = profiles_frame(5, 100, 600, email_noise=0.4)
    people = people_module.people(5, 100, 600)
    assert frame["first_name"].equals(people["first_name"])
    assert frame["profile_id"][0] == "p00000100"
    clean = frame["email"].str.strip_chars().str.to_lowercase()
    assert clean.equals(people["email"].alias("email"))
    noisy = (frame["email"] != people["email"]).mean()
    assert 0.3 < noisy < 0.5


def test_every_property_type_is_present():
    frame = profiles_frame(0, 0, 2000)
    assert frame.schema["points"] == pl.Int64
    assert frame.schema["last_order"] == pl.Date
    assert frame.schema["vip"] == pl.Boolean
    assert frame.schema["interests"] == pl.List(pl.String)
    assert frame["interests"].list.len().max() > 1  # multi-valued
    both = frame.filter(
        pl.col("consented_objectives").list.contains("email_marketing")
        & pl.col("refused_objectives").list.contains("email_marketing")
    )
    assert both.height > 0  # contradictory consent occurs, so "refusal wins" is exercised


def test_person_offset_for_matching_subscribers():
    assert emulator_person_offset(1000, 400, 100) == 900
    assert emulator_person_offset(1000, 400, 0.25) == 750
    assert emulator_person_offset(1000, 400, 0) == 1000
    offset = emulator_person_offset(1000, 400, 0.1)
    store = set(people_module.people(0, 0, 1000)["email"])
    account = set(people_module.people(0, offset, offset + 400)["email"])
    assert len(store & account) == 100
    with pytest.raises(ConfigurationError):
        emulator_person_offset(1000, 50, 100)
    with pytest.raises(ConfigurationError):
        emulator_person_offset(1000, 50, 1.5)
