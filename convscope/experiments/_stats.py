"""Paired statistics over one test set: the exact McNemar test and a bootstrap over test images.

Two models evaluated on the same test images are paired: the question is whether one gets right the images the
other gets wrong more often than chance. McNemar's exact test looks only at the discordant images; the bootstrap
resamples test images (with replacement, the same resample for every model and variant) and gives a percentile
interval for an accuracy difference averaged over models and seeds.
"""

from __future__ import annotations

import math

import numpy as np

BOOTSTRAP_SEED = 20181   # fixed: the intervals of one result are reproducible and share their resamples


def mcnemar(a: np.ndarray, b: np.ndarray) -> dict:
    """Exact two-sided McNemar test of paired bool outcomes ``a``, ``b`` (N,): ``b01`` images only ``b`` gets
    right, ``b10`` only ``a``; p = P(a binomial(b01 + b10, 1/2) is at least as far from the middle), capped at 1."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    n10, n01 = int((a & ~b).sum()), int((~a & b).sum())
    n = n10 + n01
    low = min(n10, n01)
    p = 1.0 if n == 0 else min(1.0, 2 * sum(math.comb(n, i) for i in range(low + 1)) / 2 ** n)
    return {"only_first": n10, "only_second": n01, "p": p}


def resample_weights(n: int, draws: int, seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """(draws, n) float: how often each of ``n`` test images appears in each bootstrap resample."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n, np.full(n, 1.0 / n), size=draws).astype(np.float64)


def bootstrap_ci(values: np.ndarray, weights: np.ndarray, level: float = 0.95) -> dict:
    """``values`` (N,): a per-image quantity whose mean is the statistic (e.g. correct_variant - correct_control,
    averaged over models and seeds); ``weights`` from :func:`resample_weights`. Returns the statistic and its
    percentile interval."""
    v = np.asarray(values, dtype=np.float64)
    stats = weights @ v / weights.shape[1]                         # (draws,)
    lo, hi = np.quantile(stats, [(1 - level) / 2, (1 + level) / 2])
    return {"mean": float(v.mean()), "ci95": [float(lo), float(hi)], "draws": int(weights.shape[0])}
