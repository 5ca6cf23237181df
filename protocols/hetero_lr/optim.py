"""Pure optimizers: each party updates its own weights with its own state."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

__all__ = ["OptimizerState", "init_optimizer", "apply_gradient"]


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
    penalized: np.ndarray | None = None,
    momentum: float = 0.9,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
) -> OptimizerState:
    """One step. ``penalized`` is a 0/1 mask of the weights that take the L2 term.

    ``nesterov``: ``v ← μ v + g``, ``w ← w − lr (g + μ v)`` (``g`` includes L2), the
    form the two-party mode computes on secret shares."""
    w = state.weights
    reg = l2 * w if penalized is None else l2 * w * penalized
    g = gradient + reg
    t = state.t + 1
    if state.kind == "sgd":
        return replace(state, weights=w - learning_rate * g, t=t)
    if state.kind == "nesterov":
        v = momentum * state.v + g
        return replace(state, weights=w - learning_rate * (g + momentum * v), v=v, t=t)
    m = beta1 * state.m + (1 - beta1) * g
    v = beta2 * state.v + (1 - beta2) * g * g
    step = learning_rate * (m / (1 - beta1**t)) / (np.sqrt(v / (1 - beta2**t)) + eps)
    return replace(state, weights=w - step, m=m, v=v, t=t)
