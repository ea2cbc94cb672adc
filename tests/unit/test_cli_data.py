"""`smartreco data describe|generate` through the real entry point (smartreco.cli.main)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from smartreco.cli import main
from smartreco.data.io import load_folder

pytestmark = [pytest.mark.unit]


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


def test_describe_movielens_prints_counts_and_positive_share(capsys) -> None:
    assert main(["data", "describe", "--source", "movielens"]) == 0
    out = capsys.readouterr().out
    for expected in ("users:           610", "items:           9742", "interactions:    100836",
                     "positive share:  0.4818", "types:           rating=100836"):
        assert expected in out


def test_describe_json_of_synthetic(capsys) -> None:
    assert main(["data", "describe", "--source", "synthetic", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["users"], summary["items"], summary["interactions"]) == (2000, 3000, 100_000)
    assert summary["source"] == "synthetic" and 0 < summary["positive_share"] < 1


def test_bad_source_exits_1_with_one_line(capsys) -> None:
    assert main(["data", "describe", "--source", "no-such-thing"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert err.startswith("error: --source 'no-such-thing'")


def test_generate_writes_loadable_parquet(tmp_path: Path, capsys) -> None:
    out = tmp_path / "shop"
    argv = ["data", "generate", "--users", "25", "--items", "90", "--interactions", "400", "--seed", "3",
            "--out", str(out)]
    assert main(argv) == 0
    assert "interactions=400" in capsys.readouterr().out
    data = load_folder(out)
    assert (len(data.users), len(data.items), len(data.interactions)) == (25, 90, 400)
    assert json.loads((out / "manifest.json").read_text())["seed"] == 3
    # a second run into the same folder is refused unless --overwrite
    assert main(argv) == 1
    assert _error_lines(capsys.readouterr().err) == [
        f"error: {out}: already holds a dataset (pass overwrite / --overwrite to replace it)"]
    assert main([*argv, "--overwrite"]) == 0


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--users", "0"), ("--items", "-3"), ("--interactions", "many"), ("--chunk-rows", "0")],
)
def test_generate_bad_size_is_one_line(tmp_path: Path, capsys, flag: str, value: str) -> None:
    sizes = {"--users": "5", "--items": "40", "--interactions": "50", flag: value}
    argv = ["data", "generate", *[x for kv in sizes.items() for x in kv], "--out", str(tmp_path / "x")]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"error: {flag}: must be a positive integer, got '{value}'"
    assert not (tmp_path / "x").exists()
