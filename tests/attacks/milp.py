"""Subset-sum label recovery with scipy's MILP solver (a helper, not a test).

The attack: a party that knows the features ``X`` (rows x m) of a batch observes
``t ~= X^T v`` with ``v_i = c * y_i + o`` per row (for the coordinated protocol's
first batch, ``v = d = -y_pm / 2``: ``c = -1/2`` on labels in {-1, +1}). Since
``y_pm = 2 b - 1`` with ``b`` in {0, 1}, every such map is affine in ``b``::

    t = X^T (alpha * b + beta * 1)        alpha = 2c, beta = o - c   (y in +-1)
                                          alpha = c,  beta = o       (y in 0/1)

``recover_labels`` solves for ``b`` in {0, 1}^rows minimizing the L1 slack of
that system (a feasibility problem with a tolerance for fixed-point rounding).
The scale must be given: an attacker who does not know it tries the few
fixed-point scales the protocol could have used (:func:`.views.milp_scales`)
and keeps the solution with the least slack. (Leaving ``alpha`` and ``beta``
free makes the LP relaxation trivially feasible at ``b = 1/2``; HiGHS then
does not find even the true labels within 20 s, so that variant is not offered.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp

__all__ = ["MilpResult", "recover_labels", "solve"]


@dataclass(frozen=True)
class MilpResult:
    labels: np.ndarray  # 0/1 per row
    slack: float  # L1 residual of the system, in units of the normalized target
    success: bool


def _solve_fixed(x: np.ndarray, t01: np.ndarray, tol: float, time_limit: float) -> MilpResult:
    """min sum(s)  s.t.  |X^T b - t01| <= s + tol,  b binary.  Variables: [b (n), s (m)]."""
    n, m = x.shape
    xt = x.T
    # Normalize each equation so the tolerance means the same thing in every column.
    norm = np.maximum(np.abs(xt).sum(axis=1), 1e-12)
    a = xt / norm[:, None]
    t = t01 / norm
    eye = np.eye(m)
    # a b - s <= t + tol ;  a b + s >= t - tol
    cons = [
        LinearConstraint(np.hstack([a, -eye]), -np.inf, t + tol),
        LinearConstraint(np.hstack([a, eye]), t - tol, np.inf),
    ]
    c = np.r_[np.zeros(n), np.ones(m)]
    integrality = np.r_[np.ones(n), np.zeros(m)]
    bounds = Bounds(np.r_[np.zeros(n), np.zeros(m)], np.r_[np.ones(n), np.full(m, np.inf)])
    res = milp(c, constraints=cons, integrality=integrality, bounds=bounds,
               options={"time_limit": time_limit, "disp": False})
    if res.x is None:
        return MilpResult(np.zeros(n, dtype=int), float("inf"), False)
    b = (res.x[:n] > 0.5).astype(int)
    return MilpResult(b, float(np.sum(np.abs(a @ b - t))), bool(res.success))


def solve(
    x_batch: np.ndarray,
    target: np.ndarray,
    *,
    scale: float,
    offset: float = 0.0,
    labels: str = "pm1",
    tol: float = 1e-6,
    time_limit: float = 10.0,
) -> MilpResult:
    """Like :func:`recover_labels`, returning the slack and solver status as well."""
    x = np.asarray(x_batch, dtype=float)
    t = np.asarray(target, dtype=float).ravel()
    if x.ndim != 2 or x.shape[1] != t.size:
        raise ValueError(f"target has {t.size} values, the batch has {x.shape[1]} feature columns")
    if labels not in ("pm1", "01"):
        raise ValueError("labels must be 'pm1' or '01'")
    if scale == 0:
        raise ValueError("scale must be non-zero")
    alpha, beta = (2.0 * scale, offset - scale) if labels == "pm1" else (float(scale), float(offset))
    t01 = (t - beta * x.sum(axis=0)) / alpha  # = X^T b
    return _solve_fixed(x, t01, tol, time_limit)


def recover_labels(
    x_batch: np.ndarray,
    target: np.ndarray,
    *,
    scale: float,
    offset: float = 0.0,
    labels: str = "pm1",
    tol: float = 1e-6,
    time_limit: float = 10.0,
) -> np.ndarray:
    """Recover 0/1 labels ``b`` from ``target ~= X^T v``, ``v_i = scale * y_i + offset``.

    Args:
        x_batch: the batch's features as the attacker holds them (rows x m).
        target: the observed length-m vector.
        scale, offset: the map from labels to ``v`` (``v_i = scale * y_i + offset``).
        labels: ``"pm1"`` if ``y`` is in {-1, +1}, ``"01"`` if in {0, 1}.
        tol: per-equation tolerance, relative to the equation's L1 row norm
            (fixed-point rounding of features and residuals is far below 1e-6).
        time_limit: seconds per MILP.

    Returns:
        The 0/1 vector of the best solution found (1 = positive label).
    """
    return solve(x_batch, target, scale=scale, offset=offset, labels=labels, tol=tol, time_limit=time_limit).labels
