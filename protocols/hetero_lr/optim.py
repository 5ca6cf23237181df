"""Pure optimizers: each party updates its own weights with its own state."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

__all__ = ["OptimizerState", "init_optimizer", "apply_gradient", "soft_threshold"]


@dataclass(frozen=True)
class OptimizerState:
    kind: str
    weights: np.ndarray
    m: np.ndarray
    v: np.ndarray
    t: int = 0


def init_optimizer(kind: str, n_weights: int) -> OptimizerState:
    z = np.zeros(n_weights)
    return OptimizerState(kind, z.copy(), z.copy(), z.copy(), 0)


def apply_gradient(
    state: OptimizerState,
    gradient: np.ndarray,
    *,
    learning_rate: float,
    l2: float,
    l1: float = 0.0,
    penalized: np.ndarray | None = None,
    momentum: float = 0.9,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
) -> OptimizerState:
    """One step. ``penalized`` is a 0/1 mask of the weights that take the L2 (and L1) term.

    ``l1``: a proximal step after the update (elastic net with ``l2``): each weight is soft-thresholded by
    ``learning_rate · l1`` (:func:`soft_threshold`), which sets small weights to exactly zero. The owner of a
    weight block applies it to its own block, so it needs the block in the clear (the coordinated protocol;
    the two-party one keeps weights secret-shared and refuses ``l1``). With ``adam`` the threshold uses the
    base learning rate, not Adam's per-weight step (proximal Adam is approximate).

    ``nesterov``: ``v ← μ v + g``, ``w ← w − lr (g + μ v)`` (``g`` includes L2), the
    form the two-party mode computes on secret shares."""
    w = state.weights
    reg = l2 * w if penalized is None else l2 * w * penalized
    g = gradient + reg
    t = state.t + 1
    if state.kind == "sgd":
        new, out = w - learning_rate * g, replace(state, t=t)
    elif state.kind == "nesterov":
        v = momentum * state.v + g
        new, out = w - learning_rate * (g + momentum * v), replace(state, v=v, t=t)
    else:
        m = beta1 * state.m + (1 - beta1) * g
        v = beta2 * state.v + (1 - beta2) * g * g
        step = learning_rate * (m / (1 - beta1**t)) / (np.sqrt(v / (1 - beta2**t)) + eps)
        new, out = w - step, replace(state, m=m, v=v, t=t)
    if l1:
        mask = np.ones_like(new) if penalized is None else np.asarray(penalized, dtype=float)
        new = np.where(mask > 0, soft_threshold(new, learning_rate * l1), new)
    return replace(out, weights=new)


def soft_threshold(w: np.ndarray, threshold: float) -> np.ndarray:
    """The proximal operator of ``threshold · |w|_1``: ``sign(w) · max(|w| − threshold, 0)``; exact zeros below it."""
    return np.sign(w) * np.maximum(np.abs(w) - threshold, 0.0)
