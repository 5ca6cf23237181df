"""Local, per-party preprocessing: the train/test split, batches, standardization.

Both parties derive the split and the batches from the aligned ids and the job
seed alone, so they agree without exchanging anything. Hash-based derivation
(SHA-256) is used instead of a seeded numpy generator because two parties may
run different numpy versions.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import DataError

__all__ = ["split_train_test", "kfold_assign", "epoch_batches", "Standardizer"]


def _rank_keys(seed: int, label: bytes, items: Sequence[bytes]) -> np.ndarray:
    prefix = b"fedcredit/v1/" + label + b"|" + str(int(seed)).encode() + b"|"
    keys = np.empty(len(items), dtype=np.uint64)
    for i, item in enumerate(items):
        keys[i] = int.from_bytes(hashlib.sha256(prefix + item).digest()[:8], "big")
    return keys


def split_train_test(aligned_ids: Sequence[str], seed: int, test_fraction: float, *, purpose: str = "split"
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Split aligned positions into train and test, identically on both sides.

    Positions are ranked by SHA-256(purpose, seed, id); the first ``round(n * test_fraction)``
    form the test set. Returns sorted position arrays ``(train, test)``. ``purpose`` keeps
    splits of the same ids independent (``validation`` carves validation rows out of the
    training rows).
    """
    if not 0.0 <= test_fraction < 1.0:
        raise DataError("test_fraction must be in [0, 1)")
    n = len(aligned_ids)
    keys = _rank_keys(seed, purpose.encode(), [i.encode("utf-8") for i in aligned_ids])
    order = np.lexsort((np.arange(n), keys))
    n_test = int(round(n * test_fraction))
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def kfold_assign(aligned_ids: Sequence[str], seed: int, k: int) -> np.ndarray:
    """Each aligned position's fold in ``range(k)``, identically on both sides (from the ids and the seed).

    Positions are ranked by SHA-256(cv, seed, id) and dealt to the folds in turn, so fold sizes differ by
    at most one.
    """
    if k < 2 or k > len(aligned_ids):
        raise DataError(f"cv_folds must be in [2, {len(aligned_ids)}] for {len(aligned_ids)} aligned rows")
    n = len(aligned_ids)
    keys = _rank_keys(seed, b"cv", [i.encode("utf-8") for i in aligned_ids])
    order = np.lexsort((np.arange(n), keys))
    fold = np.empty(n, dtype=np.int64)
    fold[order] = np.arange(n) % k
    return fold


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """The mini-batches of one epoch: a seeded permutation of ``range(n)``, cut in order.

    A final remainder smaller than half a batch is merged into the previous batch:
    a tiny batch would let a party solve its gradient for per-row residuals.
    """
    keys = _rank_keys(seed, b"batch|" + str(epoch).encode(), [i.to_bytes(8, "big") for i in range(n)])
    order = np.lexsort((np.arange(n), keys))
    batches = [order[i : i + batch_size] for i in range(0, n, batch_size)]
    if len(batches) > 1 and len(batches[-1]) < batch_size / 2:
        tail = batches.pop()
        batches[-1] = np.concatenate([batches[-1], tail])
    return batches


@dataclass(frozen=True)
class Standardizer:
    """Column means and scales fitted on training rows; missing values take the mean.

    ``clip`` winsorizes standardized values at ±clip. The second-order Taylor
    loss weighs outliers quadratically; clipping at 3 standard deviations
    closes most of its gap to exact logistic regression (on default_credit the
    test-AUC gap to sklearn drops from about 0.007 to 0.004). It is a local step
    that changes nothing anyone else sees.
    """

    mean: np.ndarray
    scale: np.ndarray
    clip: float | None = None

    @classmethod
    def fit(cls, x: np.ndarray, clip: float | None = None) -> "Standardizer":
        if x.ndim != 2:
            raise DataError("features must be a 2-D array")
        if x.shape[0] == 0:
            return cls(np.zeros(x.shape[1]), np.ones(x.shape[1]))
        with np.errstate(all="ignore"):
            mean = np.nanmean(x, axis=0) if x.size else np.zeros(x.shape[1])
            scale = np.nanstd(x, axis=0)
        mean = np.where(np.isfinite(mean), mean, 0.0)
        scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
        return cls(mean, scale, clip)

    def transform(self, x: np.ndarray) -> np.ndarray:
        filled = np.where(np.isnan(x), self.mean, x)
        z = (filled - self.mean) / self.scale
        return np.clip(z, -self.clip, self.clip) if self.clip is not None else z
