"""The scores that sample the dataset by fixed factors: the FactorVAE score (Kim & Mnih 2018) and the
BetaVAE score (Higgins et al. 2017), as disentanglement_lib defines them (see disentanglement.py for
where this departs from it), and the encoding of factor samples they and MIG/DCI share."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression

from vae.metrics.ground_truth import DEFAULT, GroundTruthData, Represent

IMAGES_PER_CALL = 2048  # images per represent() call: groups of votes share a call instead of one call each


def encode_factors(data: GroundTruthData, represent: Represent, factors: np.ndarray) -> np.ndarray:
    """Codes (n, L) of the images that ``factors`` (n, F) generate, ``IMAGES_PER_CALL`` at a time."""
    parts = []
    for start in range(0, len(factors), IMAGES_PER_CALL):
        rows = factors[start:start + IMAGES_PER_CALL]
        codes = np.asarray(represent(data.images_from_factors(rows)), dtype=np.float64)
        if codes.ndim != 2 or len(codes) != len(rows):
            raise ValueError(f"represent() must return an array (n, L); got shape {codes.shape} for n={len(rows)}")
        parts.append(codes)
    return np.concatenate(parts)


def sample_factors(data: GroundTruthData, n: int, rng: np.random.Generator) -> np.ndarray:
    factors = np.array(data.sample_factors(n, rng), dtype=np.int64)  # a copy: rows get overwritten
    if factors.shape != (n, len(data.factor_sizes)):
        raise ValueError(f"sample_factors({n}) must return shape {(n, len(data.factor_sizes))}; got {factors.shape}")
    return factors


def _draw_fixed_factor(data: GroundTruthData, rng: np.random.Generator, groups: int) -> np.ndarray:
    """Which factor each group keeps fixed: any factor that varies (the reference draws any factor;
    fixing a constant one, such as dSprites' colour, would only add noise votes)."""
    varying = np.flatnonzero(np.asarray(data.factor_sizes) > 1)
    return varying[rng.integers(len(varying), size=groups)]


def _grouped_codes(data: GroundTruthData, represent: Represent, factors: np.ndarray) -> np.ndarray:
    codes = encode_factors(data, represent, factors.reshape(-1, factors.shape[-1]))
    return codes.reshape(*factors.shape[:-1], codes.shape[-1])


def _chunks(total: int, images_per_group: int):
    """Split ``total`` groups (votes, points) into runs of about IMAGES_PER_CALL images."""
    step = max(1, IMAGES_PER_CALL // images_per_group)
    for start in range(0, total, step):
        yield min(step, total - start)


def _factor_vae_votes(data, represent, rng, batch_size, num_points, global_variances, active) -> np.ndarray:
    """(F, L) counts: how often code dim l had the least normalised variance when factor k was fixed."""
    votes = np.zeros((len(data.factor_sizes), len(global_variances)), dtype=np.int64)
    active_dims = np.flatnonzero(active)
    for groups in _chunks(num_points, batch_size):
        k = _draw_fixed_factor(data, rng, groups)
        f = sample_factors(data, groups * batch_size, rng).reshape(groups, batch_size, -1)
        f[np.arange(groups), :, k] = f[np.arange(groups), 0, k][:, None]  # factor k as in the batch's first row
        local = np.var(_grouped_codes(data, represent, f), axis=1, ddof=1)
        dim = active_dims[np.argmin(local[:, active] / global_variances[active], axis=1)]
        np.add.at(votes, (k, dim), 1)
    return votes


def factor_vae_score(data: GroundTruthData, represent: Represent, rng: np.random.Generator,
                     batch_size: int = DEFAULT.batch_size, num_train: int = DEFAULT.factor_vae_train,
                     num_eval: int = DEFAULT.factor_vae_eval, num_variance_estimate: int = DEFAULT.factor_vae_variance,
                     prune_threshold: float = 0.05) -> float:
    """FactorVAE score (Kim & Mnih 2018): eval accuracy of a majority-vote classifier from the code dim of
    least normalised variance (in a batch with one factor fixed) to that factor.

    Variances are normalised by each dim's variance over ``num_variance_estimate`` random images; dims
    whose standard deviation is below ``prune_threshold`` (collapsed to a constant) take no votes, as in
    the reference (its study config: 0.05). 0 when every dim is collapsed.
    """
    global_variances = np.var(encode_factors(data, represent, sample_factors(data, num_variance_estimate, rng)),
                              axis=0, ddof=1)
    active = np.sqrt(global_variances) >= prune_threshold
    if not active.any():
        return 0.0
    train = _factor_vae_votes(data, represent, rng, batch_size, num_train, global_variances, active)
    classifier = np.argmax(train, axis=0)  # the factor each dim votes for most often
    evals = _factor_vae_votes(data, represent, rng, batch_size, num_eval, global_variances, active)
    return float(evals[classifier, np.arange(evals.shape[1])].sum() / evals.sum())


def _beta_vae_points(data, represent, rng, batch_size, num_points) -> tuple[np.ndarray, np.ndarray]:
    """Features mean |z1 − z2| over a batch of pairs that share factor k, labelled k."""
    features, labels = [], []
    for groups in _chunks(num_points, 2 * batch_size):
        k = _draw_fixed_factor(data, rng, groups)
        f = sample_factors(data, 2 * groups * batch_size, rng).reshape(2, groups, batch_size, -1)
        f[1, np.arange(groups), :, k] = f[0, np.arange(groups), :, k]  # pair i shares factor k
        z = _grouped_codes(data, represent, f)
        features.append(np.mean(np.abs(z[0] - z[1]), axis=1))
        labels.append(k)
    return np.concatenate(features), np.concatenate(labels)


def beta_vae_score(data: GroundTruthData, represent: Represent, rng: np.random.Generator,
                   batch_size: int = DEFAULT.batch_size, num_train: int = DEFAULT.beta_vae_train,
                   num_eval: int = DEFAULT.beta_vae_eval) -> float:
    """BetaVAE score (Higgins et al. 2017): eval accuracy of a linear classifier (sklearn's logistic
    regression, as the reference's ``beta_vae_sklearn``) telling which factor a batch of pairs shares."""
    x_train, y_train = _beta_vae_points(data, represent, rng, batch_size, num_train)
    # The reference builds LogisticRegression() with scikit-learn's defaults, which changed in 0.22: since then
    # C=1, lbfgs, multinomial (what this uses); before it C=1, liblinear, one-vs-rest, which is what the 2019
    # disentanglement_lib runs used, so their scores may differ slightly. A higher max_iter changes nothing where
    # 100 iterations converge (all the tests' codes: 13-71); elsewhere it fits the same model to the end.
    model = LogisticRegression(max_iter=2000, random_state=0).fit(x_train, y_train)
    x_eval, y_eval = _beta_vae_points(data, represent, rng, batch_size, num_eval)
    return float(model.score(x_eval, y_eval))
