"""Training parameters and the fixed-point budget plan, checked before any work."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np

from ..errors import BudgetError

__all__ = ["HeteroLRParams", "BudgetPlan", "plan_budget", "class_weights", "CLASS_WEIGHT_FRAC_BITS",
           "MAX_CLASS_WEIGHT"]

#: Fixed-point bits of a class weight in the two-party mode (weights are rounded to multiples of 2^-12).
CLASS_WEIGHT_FRAC_BITS = 12
#: The largest class weight the two-party mode's ring budget is planned for (after ``balanced`` is computed).
MAX_CLASS_WEIGHT = 256.0


@dataclass(frozen=True)
class HeteroLRParams:
    """Hyper-parameters of coordinated vertical LR. Every party uses the same values.

    Attributes:
        learning_rate: step size of the first epoch.
        lr_decay: the step size of epoch ``e`` is ``learning_rate / (1 + lr_decay * e)``.
        batch_size: rows per mini-batch; 0 means automatic (:meth:`batch_size_for`).
        max_epochs: upper bound on passes over the training rows.
        tol: stop when the epoch's mean Taylor loss changes by less than this.
        l2: L2 penalty on the weights (never on the guest's intercept).
        l1: L1 penalty (elastic net with ``l2``), by a proximal soft-threshold step each weight's owner applies
            to its own block after every update (coordinated protocol). The two-party protocol refuses it:
            no party holds a weight in the clear during training.
        optimizer: ``sgd``, ``nesterov`` (SGD with Nesterov momentum ``momentum``) or
            ``adam``; each party keeps its own optimizer state. The two-party
            mode keeps the weights secret-shared and needs a linear update:
            ``sgd`` or ``nesterov``.
        momentum: Nesterov's ``μ``: ``v ← μ v + g``, ``w ← w − lr (g + μ v)``.
        key_bits: Paillier modulus size.
        residual_frac_bits: fixed-point fractional bits of scores and residuals.
        feature_frac_bits: fractional bits of the quantized features (the
            multi-exponentiation exponents, so fewer bits are faster).
        mask_security_bits: statistical security of gradient masks: the mask is
            this many bits wider than the largest possible gradient sum.
        max_abs_score: plan bound on |u| for one party's partial score; a larger
            score raises :class:`BudgetError` at run time instead of overflowing.
        seed: job seed: batches and the train/test split derive from it.
        reveal_weights: two-party mode: ``owner`` -- each party learns its own final
            weights; ``shared`` -- they stay secret-shared (for joint scoring), and
            the guest learns only the joint scores of the test rows.
        ring_bits: two-party mode: shares live modulo ``2^ring_bits``.
        share_frac_bits: two-party mode: fixed-point bits of the weights.
        update_frac_bits: two-party mode: fixed-point bits of the step constants
            ``lr / (4|B|)`` and ``lr * l2``.
        feature_int_bits: two-party mode: every standardized feature must satisfy
            ``|x| < 2^feature_int_bits`` (a public bound, so packing layouts do not
            depend on the data; clipping at 3 always satisfies it).
        he_scheme: two-party mode: ``paillier`` (each party a Paillier key) or
            ``ckks`` (each party a ring-LWE key: CKKS ciphertexts with values in
            coefficients, decrypted exactly; see :mod:`fedcredit.protocols.rlwe.scheme`).
        rlwe_degree: two-party CKKS: the ring degree ``N``.
        class_weight: ``None`` (every row weighs 1), ``"balanced"`` (class ``k`` weighs
            ``n / (2 n_k)`` over the training rows, as scikit-learn computes it) or a pair
            ``(w0, w1)``. Only the label holder (the guest) knows the per-row weights: it
            weights the residual before anything derived from it leaves
            (two-party: Paillier only, see :mod:`.two_party`).
        patience: two-party early stopping (0: off). With validation rows, the guest scores them after
            every epoch (joint scores ``z``, as for the test rows) and training stops once
            ``validation_metric`` has not improved for ``patience`` epochs; both parties then keep the
            weights of the best epoch.
        validation_metric: ``loss`` (mean logistic loss of the validation rows, lower is better) or
            ``auc`` (higher is better).
    """

    learning_rate: float = 0.2
    lr_decay: float = 1.0
    batch_size: int = 0
    max_epochs: int = 6
    tol: float = 1e-4
    l2: float = 1e-3
    l1: float = 0.0
    optimizer: Literal["sgd", "nesterov", "adam"] = "sgd"
    momentum: float = 0.9
    key_bits: int = 2048
    residual_frac_bits: int = 32
    feature_frac_bits: int = 16
    mask_security_bits: int = 80
    max_abs_score: float = 2.0**20
    seed: int = 42
    paillier_engine: Literal["fast", "phe"] = "fast"  # "phe": python-paillier's arithmetic, for benchmarks
    reveal_weights: Literal["owner", "shared"] = "owner"
    ring_bits: int = 160
    share_frac_bits: int = 24
    update_frac_bits: int = 32
    feature_int_bits: int = 5
    he_scheme: Literal["paillier", "ckks"] = "paillier"
    rlwe_degree: int = 16384
    class_weight: Literal["balanced"] | tuple[float, float] | None = None
    patience: int = 0
    validation_metric: Literal["loss", "auc"] = "loss"

    def __post_init__(self) -> None:
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise BudgetError("learning_rate must be a positive number")
        if self.lr_decay < 0:
            raise BudgetError("lr_decay must be >= 0")
        if self.batch_size < 0:
            raise BudgetError("batch_size must be >= 1 (or 0 for automatic)")
        if self.max_epochs < 1:
            raise BudgetError("max_epochs must be >= 1")
        if self.l2 < 0 or self.tol < 0 or self.l1 < 0 or not math.isfinite(self.l1):
            raise BudgetError("l1, l2 and tol must be >= 0")
        if self.paillier_engine not in ("fast", "phe"):
            raise BudgetError(f"paillier_engine must be fast or phe, not {self.paillier_engine!r}")
        if self.optimizer not in ("sgd", "nesterov", "adam"):
            raise BudgetError(f"optimizer must be sgd, nesterov or adam, not {self.optimizer!r}")
        if self.he_scheme not in ("paillier", "ckks"):
            raise BudgetError(f"he_scheme must be paillier or ckks, not {self.he_scheme!r}")
        if self.reveal_weights not in ("owner", "shared"):
            raise BudgetError(f"reveal_weights must be owner or shared, not {self.reveal_weights!r}")
        if not 0.0 <= self.momentum < 1.0:
            raise BudgetError("momentum must be in [0, 1)")
        if self.mask_security_bits < 40:
            raise BudgetError("mask_security_bits below 40 does not hide gradients")
        if not (64 <= self.ring_bits <= 512 and 8 <= self.share_frac_bits <= 48 and 8 <= self.update_frac_bits <= 48
                and 1 <= self.feature_int_bits <= 16):
            raise BudgetError("ring_bits must be in [64, 512], share_frac_bits and update_frac_bits in [8, 48], "
                              "feature_int_bits in [1, 16]")
        if self.patience < 0:
            raise BudgetError("patience must be >= 0 (0: no early stopping)")
        if self.validation_metric not in ("loss", "auc"):
            raise BudgetError(f"validation_metric must be loss or auc, not {self.validation_metric!r}")
        cw = self.class_weight
        if cw is not None and cw != "balanced":
            if not (isinstance(cw, tuple) and len(cw) == 2
                    and all(isinstance(w, (int, float)) and math.isfinite(w) and 0 < w <= MAX_CLASS_WEIGHT for w in cw)):
                raise BudgetError(f"class_weight must be null, balanced, or a weight in (0, {MAX_CLASS_WEIGHT:g}] "
                                  "for each of the classes 0 and 1")
        if cw is not None and self.he_scheme != "paillier":
            raise BudgetError("class_weight needs he_scheme paillier: the CKKS engine packs rows into coefficients "
                              "and has no per-row product")
        if not (4 <= self.feature_frac_bits <= 32 and 8 <= self.residual_frac_bits <= 64):
            raise BudgetError("feature_frac_bits must be in [4, 32], residual_frac_bits in [8, 64]")

    def batch_size_for(self, n_train: int) -> int:
        """The batch size both parties use: explicit, or ``min(512, max(64, n_train // 16))``.

        Automatic sizing gives small data sets enough gradient steps per epoch
        while keeping every batch far larger than the number of weights.
        """
        if self.batch_size:
            return self.batch_size
        return min(512, max(64, n_train // 16))

    def learning_rate_at(self, epoch: int) -> float:
        return self.learning_rate / (1.0 + self.lr_decay * epoch)


def class_weights(y: Sequence[int] | np.ndarray, class_weight: Literal["balanced"] | tuple[float, float] | None
                  ) -> np.ndarray:
    """Each row's weight (float) from its label in {0, 1}: the label holder's local computation.

    ``balanced``: ``n / (2 n_k)`` for the rows of class ``k`` (scikit-learn's formula; a class with
    no row takes weight 1). Raises :class:`BudgetError` if a balanced weight exceeds :data:`MAX_CLASS_WEIGHT`.
    """
    yy = np.asarray(y, dtype=np.int64)
    if class_weight is None:
        return np.ones(len(yy))
    if class_weight == "balanced":
        n = len(yy)
        counts = [int(np.sum(yy == k)) for k in (0, 1)]
        w = tuple(n / (2.0 * c) if c else 1.0 for c in counts)
        if max(w) > MAX_CLASS_WEIGHT:
            raise BudgetError(f"class_weight: balanced gives a weight above {MAX_CLASS_WEIGHT:g} "
                              "(one class is nearly absent from the training rows)")
    else:
        w = (float(class_weight[0]), float(class_weight[1]))
    return np.where(yy == 1, w[1], w[0]).astype(float)


@dataclass(frozen=True)
class BudgetPlan:
    """Bit budget of every encrypted quantity, all below ``log2(n) - 2`` (i.e. < n/3)."""

    key_bits: int
    gradient_bits: int  # |sum_B x * d| * 2^(fr+fx) < 2^gradient_bits
    mask_bits: int  # masks are uniform in [0, 2^mask_bits)
    loss_bits: int  # |epoch loss sum| * 2^(fr+fx) < 2^loss_bits
    score_bits: int

    @property
    def limit_bits(self) -> int:
        return self.key_bits - 2


def plan_budget(params: HeteroLRParams, *, n_train: int, max_abs_feature: float) -> BudgetPlan:
    """Plan the fixed-point budget before training; raise :class:`BudgetError` if it cannot fit.

    Args:
        params: the job's parameters.
        n_train: number of training rows (bounds the epoch loss sum).
        max_abs_feature: the largest |x| of this party's standardized features.

    Raises:
        BudgetError: a masked gradient or the loss could exceed n/3, or the
            features are too large for the exponent width.
    """
    try:
        return _plan(params, n_train, max_abs_feature)
    except (OverflowError, ValueError):
        raise BudgetError("fixed-point plan overflows: feature or score bounds are far too large") from None


def _plan(params: HeteroLRParams, n_train: int, max_abs_feature: float) -> BudgetPlan:
    fr, fx = params.residual_frac_bits, params.feature_frac_bits
    if not math.isfinite(max_abs_feature):
        raise BudgetError("a feature value is not finite")
    max_d = params.max_abs_score / 2 + 0.5  # |d| = |z/4 - y/2| with |z| <= 2 * max_abs_score
    batch = params.batch_size_for(n_train)
    gradient_bits = math.ceil(math.log2(batch * max(max_abs_feature, 1.0) * max_d + 1)) + fr + fx + 1
    mask_bits = gradient_bits + params.mask_security_bits
    # per-sample loss <= log 2 + |z| / 2 + z^2 / 8, z bounded by 2 * max_abs_score
    z = 2 * params.max_abs_score
    loss_bits = math.ceil(math.log2(max(n_train, 1) * (1 + z / 2 + z * z / 8) + 1)) + fr + fx + 1
    score_bits = math.ceil(math.log2(params.max_abs_score + 1)) + fr + 1
    plan = BudgetPlan(params.key_bits, gradient_bits, mask_bits, loss_bits, score_bits)
    worst = max(mask_bits + 1, loss_bits, score_bits)
    if worst >= plan.limit_bits:
        raise BudgetError(
            f"fixed-point plan needs {worst} bits but a {params.key_bits}-bit key holds {plan.limit_bits}: "
            "lower residual_frac_bits/feature_frac_bits/batch_size or use a larger key"
        )
    if max_abs_feature * 2**fx >= 2**62:
        raise BudgetError("standardized features too large for feature_frac_bits; check the input scaling")
    return plan
