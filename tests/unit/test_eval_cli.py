"""`smartreco evaluate` on a tiny canonical folder writes the contract JSON; bad input exits 1 in one line."""

from __future__ import annotations

import json

import pytest

from smartreco.cli import main
from smartreco.evaluation.toy import toy_data

pytestmark = [pytest.mark.unit]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    data = toy_data(n_users=60, n_items=40, seed=2)
    path = tmp_path_factory.mktemp("toy")
    data.interactions.to_csv(path / "interactions.csv", index=False)
    data.items.drop(columns=["tags"]).to_csv(path / "items.csv", index=False)
    return path


def test_evaluate_writes_json_and_report(folder, tmp_path, capsys):
    out, report = tmp_path / "metrics.json", tmp_path / "report.html"
    code = main(["evaluate", "--source", str(folder), "--out", str(out), "--models", "mostpop,itemknn",
                 "--report", str(report), "--quiet"])
    assert code == 0, capsys.readouterr().err
    data = json.loads(out.read_text())
    assert set(data["models"]) == {"mostpop", "itemknn"}
    assert 0.0 <= data["models"]["itemknn"]["ndcg@10"] <= 1.0
    assert data["protocol"]["models_run"] == ["mostpop", "itemknn"] and data["skipped"] == {}
    assert data["comparisons"]["by_model"]["itemknn"]["vs_mostpop"]["reference"] == "mostpop"
    assert report.read_text().startswith("<!doctype html>")


def test_bad_source_exits_1_with_one_line(tmp_path, capsys):
    code = main(["evaluate", "--source", str(tmp_path / "nope"), "--out", str(tmp_path / "m.json")])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1 and "--source" in err
    assert not (tmp_path / "m.json").exists()


def test_unknown_model_exits_1(folder, tmp_path, capsys):
    code = main(["evaluate", "--source", str(folder), "--out", str(tmp_path / "m.json"), "--models", "nope"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and "unknown model 'nope'" in err and len(err.splitlines()) == 1
