"""`smartreco evaluate --hybrid-config KEY=VALUE`: typed HybridConfig overrides, bad keys a clear error."""

from __future__ import annotations

import click
import pytest

from smartreco.cli.evaluate import parse_overrides

pytestmark = [pytest.mark.unit]


def test_overrides_are_parsed_as_the_field_types():
    got = parse_overrides(["cf_backend=svd", "n_folds=3", "graded_labels=false", "ease_lambda=250"])
    assert got == {"cf_backend": "svd", "n_folds": 3, "graded_labels": False, "ease_lambda": 250.0}


@pytest.mark.parametrize("bad", ["n_folds", "nope=1"])
def test_unknown_or_malformed_override_names_the_option(bad):
    with pytest.raises(click.BadParameter, match="KEY=VALUE"):
        parse_overrides([bad])
