"""Disentanglement metrics on codes with known answers.

The dataset is a grid of 5 factors (sizes 3, 6, 8, 8, 8) whose "images" are the factor values
themselves, so a representation is any function of them. Expected values are worked out here from the
definitions in disentanglement_lib (Locatello et al. 2019), not copied from a run.
"""

import math

import numpy as np
import pytest

from vae.metrics.disentanglement import (
    GroundTruthData,
    MetricSizes,
    beta_vae_score,
    dci,
    disentanglement_completeness,
    evaluate,
    factor_vae_score,
    histogram_discretize,
    mig,
    mutual_info_matrix,
)

# Small enough for a test (~1 s per evaluate), large enough that chance levels are tight.
SIZES = MetricSizes(num_train=2000, num_test=1000, factor_vae_train=300, factor_vae_eval=500,
                    factor_vae_variance=2000, beta_vae_train=300, beta_vae_eval=500)


class FactorGrid:
    """Independent uniform factors; an image is the vector of its factor classes."""

    def __init__(self, sizes=(3, 6, 8, 8, 8)):
        self.factor_sizes = tuple(sizes)
        self.factor_names = tuple(f"f{j}" for j in range(len(sizes)))

    def sample_factors(self, n, rng):
        return np.stack([rng.integers(s, size=n) for s in self.factor_sizes], axis=1)

    def images_from_factors(self, factors):
        return np.asarray(factors, dtype=np.float32)


DATA = FactorGrid()
SCALE = np.array(DATA.factor_sizes, dtype=np.float64) - 1


def true_factors(images):
    """One dim per factor, noise-free, plus 5 dims collapsed to the prior (constant), as a VAE leaves them."""
    return np.concatenate([images / SCALE, np.zeros((len(images), 5))], axis=1)


ROTATION = np.linalg.qr(np.random.default_rng(1).normal(size=(5, 5)))[0]


def standardised(images):
    """Each factor at mean 0, variance 1 (a discrete uniform on 0..s−1 has variance (s² − 1) / 12)."""
    return (images - SCALE / 2) / np.sqrt(((SCALE + 1) ** 2 - 1) / 12)


def rotated_factors(images):
    """The standardised factors under a fixed random rotation: all information kept, none aligned."""
    return standardised(images) @ ROTATION


class PureNoise:
    """Codes that ignore the image."""

    def __init__(self, seed=2):
        self.rng = np.random.default_rng(seed)

    def __call__(self, images):
        return self.rng.normal(size=(len(images), 10))


def entangled(images):
    """A deterministic, partly entangled code: each dim mostly one factor, some of the others."""
    mix = np.eye(5) + 0.4 * np.random.default_rng(5).normal(size=(5, 5))
    return np.tanh(standardised(images) @ mix)


def codes_of(represent, n, seed):
    factors = DATA.sample_factors(n, np.random.default_rng(seed))
    return represent(DATA.images_from_factors(factors)), factors


def test_the_test_dataset_satisfies_the_protocol():
    data: GroundTruthData = DATA  # checked by type checkers; the attributes below by this test
    assert data.sample_factors(4, np.random.default_rng(0)).shape == (4, 5)


def test_true_factors_score_near_one():
    scores = evaluate(DATA, true_factors, sizes=SIZES).scores
    assert scores["mig"] > 0.95
    assert scores["dci_disentanglement"] > 0.95 and scores["dci_completeness"] > 0.95
    assert scores["dci_informativeness"] == 1.0
    assert scores["factor_vae"] == 1.0  # the 5 collapsed dims are pruned, not voted for
    assert scores["beta_vae"] > 0.95


def test_a_rotation_keeps_the_information_but_scores_low():
    scores = evaluate(DATA, rotated_factors, sizes=SIZES).scores
    assert scores["mig"] < 0.3
    assert scores["dci_disentanglement"] < 0.35
    assert scores["dci_informativeness"] > 0.6  # the factors are still readable from the codes


def test_noise_scores_zero_and_chance():
    scores = evaluate(DATA, PureNoise(), sizes=SIZES).scores
    assert scores["mig"] < 0.02
    assert scores["dci_disentanglement"] < 0.05
    # Chance is exactly 1/F = 0.2 (the fixed factor is independent of the code); 0.08 is 4 standard
    # errors of 500 eval votes.
    assert abs(scores["factor_vae"] - 0.2) < 0.08
    assert abs(scores["beta_vae"] - 0.2) < 0.08
    assert scores["dci_informativeness"] < 0.3


def test_a_duplicated_dim_lowers_mig_but_not_informativeness():
    codes, factors = codes_of(true_factors, 2000, seed=0)
    test_codes, test_factors = codes_of(true_factors, 500, seed=1)
    duplicated = np.concatenate([codes, codes[:, [2]]], axis=1)
    test_duplicated = np.concatenate([test_codes, test_codes[:, [2]]], axis=1)
    # Factor 2's gap becomes 0, the other four keep theirs (≈ 1): MIG ≈ 4/5.
    assert mig(codes, factors) > 0.98
    assert mig(duplicated, factors) == pytest.approx(0.8, abs=0.02)
    informed = dci(codes, factors, test_codes, test_factors)["informativeness"]
    assert dci(duplicated, factors, test_duplicated, test_factors)["informativeness"] == informed == 1.0


def test_same_seed_same_numbers_other_seed_other_numbers():
    tiny = MetricSizes(num_train=500, num_test=200, factor_vae_train=50, factor_vae_eval=50, factor_vae_variance=500,
                       beta_vae_train=50, beta_vae_eval=50)
    first = evaluate(DATA, entangled, seed=3, sizes=tiny)
    again = evaluate(DATA, entangled, seed=3, sizes=tiny)
    other = evaluate(DATA, entangled, seed=4, sizes=tiny)
    assert first.scores == again.scores
    np.testing.assert_array_equal(first.mutual_info, again.mutual_info)
    assert first.scores["mig"] != other.scores["mig"]
    assert first.mutual_info.shape == (5, 5) and first.factor_names == DATA.factor_names


# ---------------------------------------------------------------- against the definitions, by hand

def test_histogram_discretisation_and_mutual_information_by_hand():
    # 5 equal-width bins over [0, 9]: edges 0, 1.8, 3.6, 5.4, 7.2, 9 -> bins {0,1} {2,3} {4,5} {6,7} {8,9}.
    code = np.arange(10.0)[:, None]
    np.testing.assert_array_equal(histogram_discretize(code, num_bins=5)[:, 0], [1, 1, 2, 2, 3, 3, 4, 4, 5, 5])
    factor = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1])[:, None]
    # Only bin 3 mixes the two classes: H(f | bin) = 0.2 * ln 2, so I = ln 2 − 0.2 ln 2.
    assert mutual_info_matrix(code, factor, num_bins=5)[0, 0] == pytest.approx(0.8 * math.log(2))


def test_mig_by_hand_on_exact_discrete_codes():
    # A full grid: f0 in {0,1}, f1 in {0..3}. z0 = f0, z1 = f1 // 2 (half of f1), z2 = f1.
    f0, f1 = np.meshgrid(np.arange(2), np.arange(4), indexing="ij")
    factors = np.tile(np.stack([f0.ravel(), f1.ravel()], axis=1), (25, 1))
    codes = np.stack([factors[:, 0], factors[:, 1] // 2, factors[:, 1]], axis=1).astype(float)
    ln2 = math.log(2)
    # I(z; f0) = (ln2, 0, 0), H(f0) = ln2: gap 1.  I(z; f1) = (0, ln2, ln4), H(f1) = ln4: gap (ln4 − ln2)/ln4.
    np.testing.assert_allclose(mutual_info_matrix(codes, factors), [[ln2, 0], [0, ln2], [0, 2 * ln2]], atol=1e-12)
    assert mig(codes, factors) == pytest.approx((1 + 0.5) / 2)


def test_dci_disentanglement_and_completeness_by_hand():
    importance = np.array([[0.5, 0.5],   # code 0 split evenly between the factors: disentanglement 0
                           [1.0, 0.0]])  # code 1 only factor 0: disentanglement 1
    h = -(1 / 3 * math.log2(1 / 3) + 2 / 3 * math.log2(2 / 3))  # factor 0's importance over codes: 1/3, 2/3
    d, c = disentanglement_completeness(importance)
    assert d == pytest.approx(0.5 * 0 + 0.5 * 1)                # weights: row sums / total = 1/2, 1/2
    assert c == pytest.approx(0.75 * (1 - h) + 0.25 * 1)       # weights: column sums / total = 3/4, 1/4


def only_first_two_factors(images):
    return images[:, :2] / SCALE[:2]


def test_factor_vae_score_when_only_two_factors_are_coded():
    # Fixing f0 (f1) zeroes dim 0's (1's) variance: those votes are right. Fixing f2..f4 leaves both dims
    # varying; each dim's majority stays f0 / f1 (1/5 of votes against 1/10), so those votes are wrong.
    # Expected accuracy: P(fixed factor is f0 or f1) = 2/5.
    score = factor_vae_score(DATA, only_first_two_factors, np.random.default_rng(0), num_train=300, num_eval=500,
                             num_variance_estimate=2000)
    assert score == pytest.approx(0.4, abs=0.08)  # 4 standard errors of 500 votes


def test_beta_vae_score_when_only_two_factors_are_coded():
    # Sharing f0 (f1) zeroes feature 0 (1): separable. Sharing f2, f3 or f4 gives the same feature
    # distribution, so the best linear classifier gets one of those three: accuracy 2/5 + 1/5 = 3/5.
    score = beta_vae_score(DATA, only_first_two_factors, np.random.default_rng(0), num_train=300, num_eval=500)
    assert score == pytest.approx(0.6, abs=0.08)


# ---------------------------------------------------------------- edges

def test_collapsed_representation_scores_zero_on_factor_vae():
    assert factor_vae_score(DATA, lambda x: np.zeros((len(x), 4)), np.random.default_rng(0), num_train=10,
                            num_eval=10, num_variance_estimate=100) == 0.0


def test_a_constant_factor_is_left_out_as_in_dsprites_colour():
    data = FactorGrid(sizes=(1, 3, 6))
    scores = evaluate(data, lambda x: x[:, 1:] / np.array([2.0, 5.0]), sizes=SIZES).scores
    assert all(np.isfinite(v) for v in scores.values())
    assert scores["mig"] > 0.95 and scores["dci_disentanglement"] > 0.95 and scores["factor_vae"] == 1.0


def test_the_reference_ensemble_agrees_on_true_factors():
    # Two factors and three dims (one collapsed) keep the reference's 100 boosting stages cheap.
    codes, factors = codes_of(true_factors, 150, seed=0)
    test_codes, test_factors = codes_of(true_factors, 100, seed=1)
    scores = dci(codes[:, [0, 1, 5]], factors[:, :2], test_codes[:, [0, 1, 5]], test_factors[:, :2],
                 ensemble="reference")
    assert scores["disentanglement"] > 0.95 and scores["informativeness"] == 1.0


def test_wrong_inputs_are_refused():
    with pytest.raises(ValueError, match=r"represent\(\) must return an array \(n, L\)"):
        factor_vae_score(DATA, lambda x: np.zeros(len(x)), np.random.default_rng(0), num_train=1, num_eval=1,
                         num_variance_estimate=10)
    with pytest.raises(ValueError, match="no factor varies"):
        evaluate(FactorGrid(sizes=(1, 1)), lambda x: x, sizes=SIZES)
    with pytest.raises(ValueError, match="ensemble='gbt' is not one of"):
        dci(np.zeros((4, 2)), np.array([[0], [1], [0], [1]]), np.zeros((2, 2)), np.array([[0], [1]]), ensemble="gbt")
