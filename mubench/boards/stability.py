"""How far a board's order would survive a change of seeds: the expected Kendall τ between the orders of two
independent seed sets, estimated from the board's own per-seed scores, and the seed count that would reach a target.

The model is the two-way layout of a paired board: score(row, seed) = row mean + seed effect + row noise. A seed
effect shifts every row of that seed alike and cannot change the order, so it is removed (each seed's scores are
centred on their mean over rows). What is left gives each row's noise variance (over seeds) and its mean. The
observed means spread more than the true ones, by the noise of a mean over n seeds; the true spread is estimated by
the method of moments (variance of the means minus the average noise variance over n, at least 0) and the means are
shrunk toward their average by that share. Two independent boards of m seeds are then simulated from those means and
noise variances, and τ between their orders is averaged over draws.
"""
from __future__ import annotations

import numpy as np

TARGET_TAU = 0.8
MAX_SEEDS = 100
DRAWS = 2000


def score_matrix(per_seed: list[dict[int, float]]) -> np.ndarray | None:
    """Rows × seeds on the seeds every row has (None with fewer than 3 rows or 2 such seeds, where there is no
    order to speak of or no spread to estimate)."""
    if len(per_seed) < 3:
        return None
    common = sorted(set.intersection(*(set(row) for row in per_seed)))
    if len(common) < 2:
        return None
    scores = np.array([[row[seed] for seed in common] for row in per_seed], float)
    return None if np.isnan(scores).any() else scores


def shrunk_means_and_noise(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(estimated true row means, each row's noise variance for one seed) from a rows × seeds matrix."""
    centred = scores - scores.mean(axis=0, keepdims=True)
    means, noise = centred.mean(axis=1), centred.var(axis=1, ddof=1)
    spread = means.var(ddof=1)
    true_spread = max(0.0, spread - noise.mean() / scores.shape[1])
    share = true_spread / spread if spread > 0 else 0.0
    return means.mean() + share * (means - means.mean()), noise


def kendall_tau(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Kendall's τ between the rows of `a` and of `b` (draws × rows each), pair by pair; tied pairs count 0."""
    upper = np.triu_indices(a.shape[1], 1)
    sign_a = np.sign(a[:, :, None] - a[:, None, :])[:, upper[0], upper[1]]
    sign_b = np.sign(b[:, :, None] - b[:, None, :])[:, upper[0], upper[1]]
    return (sign_a * sign_b).mean(axis=1)


class Stability:
    """Expected τ between two independent m-seed boards, from the per-seed scores of the rows a board ranks."""

    def __init__(self, per_seed: list[dict[int, float]], draws: int = DRAWS, seed: int = 0):
        self.scores = score_matrix(per_seed)
        if self.scores is None:
            return
        self.means, self.noise = shrunk_means_and_noise(self.scores)
        rng = np.random.default_rng(seed)  # the same draws for every m: τ(m) then rises smoothly with m
        self._draws = rng.standard_normal((2, draws, len(self.means)))

    @property
    def seeds(self) -> int:
        return 0 if self.scores is None else self.scores.shape[1]

    def tau(self, seeds: int) -> float:
        """Expected Kendall τ between the orders of two independent boards of `seeds` seeds each."""
        if self.scores is None:
            return float("nan")
        spread = np.sqrt(self.noise / seeds)
        first, second = (self.means + spread * draw for draw in self._draws)
        return float(kendall_tau(first, second).mean())

    def seeds_for(self, target: float = TARGET_TAU) -> int | None:
        """The fewest seeds whose expected τ reaches `target` (None: not within MAX_SEEDS)."""
        if self.scores is None or self.tau(MAX_SEEDS) < target:
            return None
        low, high = 1, MAX_SEEDS
        while low < high:
            middle = (low + high) // 2
            low, high = (middle + 1, high) if self.tau(middle) < target else (low, middle)
        return low
