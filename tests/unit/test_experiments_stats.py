"""A/B statistics: cross-checked against statsmodels/scipy, and validated by vectorised simulation
(A/A false-positive rate, power vs the sample-size formula, always-valid p under daily peeking)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_confint, proportion_effectsize, proportions_ztest

from smartreco.errors import DataError
from smartreco.experiments import stats
from smartreco.experiments.sample_size import (
    power_proportions,
    sample_size_for_lift,
    sample_size_means,
    sample_size_proportions,
)
from smartreco.experiments.sequential import always_valid_p, confidence_sequence, sequential_proportions

pytestmark = [pytest.mark.unit]

ALPHA = 0.05


def fpr_bound(n_sims: int, alpha: float = ALPHA) -> float:
    return alpha + 3 * math.sqrt(alpha * (1 - alpha) / n_sims)


# ---- agreement with reference implementations ---------------------------------------------------
@pytest.mark.parametrize(
    ("xa", "na", "xb", "nb"), [(120, 1000, 150, 1000), (30, 5000, 22, 4100), (7, 80, 19, 95)]
)
def test_ztest_matches_statsmodels(xa, na, xb, nb):
    z, p, lo, hi = stats.two_proportion_ztest(xa, na, xb, nb)
    ref_z, ref_p = proportions_ztest([xb, xa], [nb, na])
    assert z == pytest.approx(ref_z, rel=1e-10) and p == pytest.approx(ref_p, rel=1e-10)
    from statsmodels.stats.proportion import confint_proportions_2indep

    ref_lo, ref_hi = confint_proportions_2indep(xb, nb, xa, na, method="wald")
    assert (lo, hi) == (pytest.approx(ref_lo, rel=1e-9), pytest.approx(ref_hi, rel=1e-9))


def test_wilson_ci_matches_statsmodels():
    x, n = np.array([0, 3, 50, 999]), np.array([10, 40, 1000, 1000])
    lo, hi = stats.wilson_ci(x, n)
    ref_lo, ref_hi = proportion_confint(x, n, alpha=ALPHA, method="wilson")
    np.testing.assert_allclose(lo, ref_lo, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(hi, ref_hi, rtol=1e-10)


def test_welch_matches_scipy_on_raw_samples():
    rng = np.random.default_rng(3)
    a, b = rng.exponential(1.0, 400), rng.exponential(1.2, 250) + rng.normal(0, 0.5, 250)
    t, df, p, lo, hi = stats.welch_ttest(a.mean(), a.var(ddof=1), len(a), b.mean(), b.var(ddof=1), len(b))
    ref = sps.ttest_ind(b, a, equal_var=False)
    assert t == pytest.approx(ref.statistic, rel=1e-10) and p == pytest.approx(ref.pvalue, rel=1e-9)
    assert df == pytest.approx(ref.df, rel=1e-10)
    ci = ref.confidence_interval(0.95)
    assert (lo, hi) == (pytest.approx(ci.low, rel=1e-9), pytest.approx(ci.high, rel=1e-9))


def test_effect_sizes_match_references():
    assert stats.cohens_h(0.10, 0.12) == pytest.approx(proportion_effectsize(0.12, 0.10), rel=1e-12)
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 1, 300), rng.normal(0.3, 2, 200)
    pooled = math.sqrt(((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / (len(a) + len(b) - 2))
    d = stats.cohens_d(a.mean(), a.var(ddof=1), len(a), b.mean(), b.var(ddof=1), len(b))
    assert d == pytest.approx((b.mean() - a.mean()) / pooled, rel=1e-12)


def test_srm_matches_scipy_chisquare_and_flags_a_broken_split():
    obs, share = [5120, 4880], [0.5, 0.5]
    res = stats.srm_check(obs, share)
    ref = sps.chisquare(obs, [5000, 5000])
    assert res["p_value"] == pytest.approx(ref.pvalue, rel=1e-10) and not res["mismatch"]
    assert stats.srm_check([5400, 4600], share)["mismatch"]
    assert not stats.srm_check([6950, 3050], [0.7, 0.3])["mismatch"]


def test_sample_size_agrees_with_statsmodels_and_its_own_power():
    n_a, n_b = sample_size_proportions(0.10, 0.11)
    assert n_a == n_b
    assert power_proportions(0.10, 0.11, n_a) == pytest.approx(0.80, abs=0.002)
    # statsmodels solves the arcsine (Cohen's h) version: the two approximations agree within ~1 %
    ref = NormalIndPower().solve_power(proportion_effectsize(0.11, 0.10), alpha=ALPHA, power=0.8)
    assert n_a == pytest.approx(ref, rel=0.01)
    assert sample_size_for_lift(0.10, 0.10) == (n_a, n_b)
    unequal = sample_size_proportions(0.10, 0.11, ratio=2.0)
    assert unequal[1] == pytest.approx(2 * unequal[0], abs=1) and unequal[0] < n_a
    ref_means = NormalIndPower().solve_power(0.2, alpha=ALPHA, power=0.8)
    assert sample_size_means(0.2, 1.0) == pytest.approx(ref_means, abs=2)
    with pytest.raises(DataError, match="rate"):
        sample_size_proportions(0.0, 0.1)


# ---- validation by simulation --------------------------------------------------------------------
def test_fixed_horizon_aa_false_positive_rate_is_at_most_alpha():
    rng = np.random.default_rng(20260101)
    n_sims, n = 4000, 3000
    for p in (0.02, 0.1):
        xa, xb = rng.binomial(n, p, n_sims), rng.binomial(n, p, n_sims)
        fpr = (stats.two_proportion_ztest(xa, n, xb, n)[1] <= ALPHA).mean()
        assert fpr <= fpr_bound(n_sims)
        assert fpr >= 0.03  # not trivially conservative either (the test has its nominal size)
    # Welch on a skewed continuous metric (reward), from per-unit samples
    a, b = rng.exponential(1.0, (n_sims, 200)), rng.exponential(1.0, (n_sims, 200))
    _, _, p, _, _ = stats.welch_ttest(a.mean(1), a.var(1, ddof=1), 200, b.mean(1), b.var(1, ddof=1), 200)
    assert (p <= ALPHA).mean() <= fpr_bound(n_sims)


@pytest.mark.parametrize(("p_a", "lift"), [(0.10, 0.10), (0.04, 0.20)])
def test_power_with_a_known_lift_matches_the_sample_size_calculation(p_a, lift):
    n_a, n_b = sample_size_for_lift(p_a, lift, power=0.8)
    rng = np.random.default_rng(7)
    n_sims = 4000
    xa, xb = rng.binomial(n_a, p_a, n_sims), rng.binomial(n_b, p_a * (1 + lift), n_sims)
    power = (stats.two_proportion_ztest(xa, n_a, xb, n_b)[1] <= ALPHA).mean()
    se = math.sqrt(0.8 * 0.2 / n_sims)
    assert abs(power - 0.8) <= 3 * se + 0.01  # "within a few points": ±~2.8 points here
    # and a half-sized test has clearly less power: the check can fail
    xa, xb = rng.binomial(n_a // 2, p_a, n_sims), rng.binomial(n_b // 2, p_a * (1 + lift), n_sims)
    assert (stats.two_proportion_ztest(xa, n_a // 2, xb, n_b // 2)[1] <= ALPHA).mean() < 0.6


def test_relative_lift_ci_covers_the_true_lift():
    rng = np.random.default_rng(11)
    n_sims, n, pa, pb = 4000, 5000, 0.08, 0.09
    xa, xb = rng.binomial(n, pa, n_sims), rng.binomial(n, pb, n_sims)
    _, lo, hi = stats.relative_lift(xa, n, xb, n)
    cover = ((lo <= pb / pa - 1) & (hi >= pb / pa - 1)).mean()
    assert abs(cover - 0.95) <= 3 * math.sqrt(0.05 * 0.95 / n_sims)


def _daily_aa(rng, n_sims, days, per_day, p):
    xa = rng.binomial(per_day, p, (n_sims, days)).cumsum(1)
    xb = rng.binomial(per_day, p, (n_sims, days)).cumsum(1)
    n = np.arange(1, days + 1) * per_day
    return xa, n, xb, n


@pytest.mark.parametrize(("p", "tau"), [(0.05, 0.005), (0.2, 0.05), (0.01, 0.001)])
def test_sequential_test_keeps_fpr_under_daily_peeking_where_naive_peeking_fails(p, tau):
    rng = np.random.default_rng(42)
    n_sims, days = 3000, 28
    xa, na, xb, nb = _daily_aa(rng, n_sims, days, 400, p)
    seq = sequential_proportions(xa, na, xb, nb, tau=tau)
    seq_fpr = (seq["p_value"] <= ALPHA).any(axis=1).mean()  # rejected at ANY daily look
    assert seq_fpr <= fpr_bound(n_sims)
    naive = (stats.two_proportion_ztest(xa, na, xb, nb)[1] <= ALPHA).any(axis=1).mean()
    assert naive > 0.15  # peeking at a fixed-horizon test every day really does inflate errors
    covered = ((seq["cs_low"] <= 0) & (seq["cs_high"] >= 0)).all(axis=1).mean()
    assert covered >= 1 - fpr_bound(n_sims)


def test_sequential_test_detects_a_real_lift_and_its_cs_covers_it():
    rng = np.random.default_rng(5)
    n_sims, days, per_day, pa, pb = 2000, 28, 1000, 0.10, 0.115
    xa = rng.binomial(per_day, pa, (n_sims, days)).cumsum(1)
    xb = rng.binomial(per_day, pb, (n_sims, days)).cumsum(1)
    n = np.arange(1, days + 1) * per_day
    seq = sequential_proportions(xa, n, xb, n, tau=0.01)
    assert (seq["p_value"][:, -1] <= ALPHA).mean() > 0.7
    assert ((seq["cs_low"] <= pb - pa) & (seq["cs_high"] >= pb - pa)).all(axis=1).mean() >= 1 - fpr_bound(
        n_sims
    )


def test_always_valid_p_is_monotone_and_cs_shrinks():
    diff = np.array([0.0, 0.02, -0.01, 0.03])
    var = np.array([1e-3, 5e-4, 2e-4, 1e-4])
    p = always_valid_p(diff, var, tau=0.02)
    assert np.all(np.diff(p) <= 0) and p[0] == 1.0
    lo, hi = confidence_sequence(diff, var, tau=0.02)
    assert np.all(np.diff(hi - lo) <= 0)
