"""MovieLens ml-latest-small -> canonical tables: counts, mapping, sessions and checksums."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from smartreco.data import columns as C
from smartreco.data.canonical import assign_sessions, positive_mask
from smartreco.data.movielens import bundled_movielens_dir, load_movielens
from smartreco.data.sources import load_source
from smartreco.errors import ChecksumError, DataError

pytestmark = [pytest.mark.unit]


@pytest.fixture(scope="module")
def ml():
    data = load_source("movielens")  # the resolution the CLI uses
    assert data.source == "movielens"
    return data


def test_counts_and_positive_share(ml) -> None:
    assert (len(ml.users), len(ml.items), len(ml.interactions)) == (610, 9742, 100836)
    assert positive_mask(ml.interactions).mean() == pytest.approx(0.4818, abs=0.001)
    assert ml.interactions[C.INTERACTION_TYPE].eq("rating").all()
    assert ml.interactions[C.INTERACTION_ID].is_unique
    assert str(ml.interactions[C.TIMESTAMP].dtype) == "datetime64[ns, UTC]"
    assert ml.interactions[C.RATING].between(0.5, 5.0).all()


def test_items_get_category_tags_and_created_date(ml) -> None:
    toy = ml.items.set_index(C.ITEM_ID).loc["1"]
    assert toy[C.TITLE] == "Toy Story (1995)"
    assert (toy[C.CATEGORY], toy[C.SUBCATEGORY]) == ("Adventure", "Animation")
    assert {"adventure", "animation", "children", "comedy", "fantasy", "pixar"} <= set(toy[C.TAGS])
    assert toy[C.CREATED_DATE] == pd.Timestamp("1995-01-01", tz="UTC")
    assert "pixar" in toy[C.DESCRIPTION]
    assert ml.items[C.CATEGORY].nunique() == 19
    # a few titles carry no parsable year: created_date is NaT, not a wrong date
    assert 0 < ml.items[C.CREATED_DATE].isna().sum() < 50
    assert ml.meta["genres"]["1"][0] == "Adventure"


def test_sessions_follow_a_30_minute_gap(ml) -> None:
    minute = 60
    frame = pd.DataFrame({
        C.USER_ID: ["a", "a", "a", "a", "b", "a"],
        C.TIMESTAMP: pd.to_datetime([0, 10 * minute, 40 * minute, 81 * minute, 5 * minute, 111 * minute],
                                    unit="s", utc=True),
    })
    sessions = assign_sessions(frame)
    # user a: gaps 10, 30 (exactly 30 min stays), 41 (new session), 30 -> two sessions; b is separate
    assert sessions.tolist() == ["a-s1", "a-s1", "a-s1", "a-s2", "b-s1", "a-s2"]
    per_user = ml.interactions.groupby(C.SESSION_ID)[C.USER_ID].nunique()
    assert per_user.eq(1).all()
    assert 1000 < ml.interactions[C.SESSION_ID].nunique() < len(ml.interactions)


def test_unknown_source_and_plain_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="expected movielens, synthetic or a folder"):
        load_source("no-such-source")
    with pytest.raises(DataError, match="no interactions.csv"):
        load_source(str(tmp_path))  # a folder without ratings.csv is read as canonical tables


@pytest.fixture()
def ml_copy(tmp_path: Path) -> Path:
    target = tmp_path / "ml"
    shutil.copytree(bundled_movielens_dir(), target)
    return target


def test_corrupted_file_is_detected(ml_copy: Path) -> None:
    with (ml_copy / "movies.csv").open("a") as fh:
        fh.write("999999,Injected (2020),Drama\n")
    with pytest.raises(ChecksumError) as info:
        load_movielens(ml_copy)
    assert "movies.csv: SHA-256 mismatch" in str(info.value)


def test_missing_listed_file_and_missing_manifest(ml_copy: Path) -> None:
    (ml_copy / "tags.csv").unlink()
    with pytest.raises(ChecksumError, match="tags.csv: listed in SHA256SUMS but missing"):
        load_movielens(ml_copy)
    (ml_copy / "SHA256SUMS").unlink()
    with pytest.raises(ChecksumError, match="checksum manifest missing"):
        load_movielens(ml_copy)


def test_not_a_movielens_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a MovieLens folder"):
        load_movielens(tmp_path)
