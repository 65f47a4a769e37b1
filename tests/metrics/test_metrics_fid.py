"""FID and KID against known answers."""

import numpy as np
import pytest
from scipy import linalg

from charforge.errors import UserError
from charforge.metrics.fid import fid, frechet_distance, kid, summarise_runs


def _closed_form(mu1, s1, mu2, s2):
    # an independent reference: scipy's general matrix square root of S1 S2
    covmean = linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def test_fid_of_a_set_with_itself_is_zero():
    f = np.random.default_rng(0).normal(size=(200, 16))
    assert fid(f, f) == pytest.approx(0.0, abs=1e-6)


def test_fid_of_shifted_gaussians_matches_closed_form():
    rng = np.random.default_rng(1)
    d = 8
    a1, a2 = rng.normal(size=(d, d)), rng.normal(size=(d, d))
    s1, s2 = a1 @ a1.T / d + 0.1 * np.eye(d), a2 @ a2.T / d + 0.1 * np.eye(d)
    mu1, mu2 = np.zeros(d), np.full(d, 0.7)
    expected = _closed_form(mu1, s1, mu2, s2)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-6)
    # and from samples drawn directly: the estimate converges on the closed form
    x = rng.multivariate_normal(mu1, s1, size=20000)
    y = rng.multivariate_normal(mu2, s2, size=20000)
    assert fid(x, y) == pytest.approx(expected, rel=0.05)
    assert expected > 3.0  # the shift dominates: ||mu1 - mu2||^2 = 8 * 0.49


def test_fid_handles_singular_covariance():
    f = np.random.default_rng(2).normal(size=(10, 32))  # fewer samples than dimensions
    g = f + 1.0
    assert fid(f, g) == pytest.approx(32.0, rel=1e-6)  # pure mean shift of 1 in each of 32 dims


def test_kid_identical_distributions_near_zero_and_shift_positive():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(400, 16)), rng.normal(size=(400, 16))
    same, _ = kid(a, b, n_subsets=20, subset_size=200)
    shifted, _ = kid(a, b + 0.5, n_subsets=20, subset_size=200)
    assert abs(same) < 0.02
    assert shifted > 10 * max(abs(same), 1e-3)


def test_too_few_samples_is_a_user_error():
    with pytest.raises(UserError, match="at least 2"):
        fid(np.zeros((1, 4)), np.zeros((5, 4)))


def test_summarise_runs_reports_mean_and_spread():
    s = summarise_runs([1.0, 2.0, 4.0])
    assert s["mean"] == pytest.approx(7 / 3) and s["spread"] == 3.0
