"""Shared pieces of the red-team tests: the breast data split, transcripts, chance bands."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import binom, norm

from fedcredit.protocols.core import Message, Progress, Recv, Send
from fedcredit.protocols.hetero_lr import HeteroLRParams, Standardizer, epoch_batches, split_train_test
from fedcredit.protocols.hetero_lr.share_engine import plan_rlwe_for
from fedcredit.protocols.rlwe import scheme as rl
from helpers import breast_arrays, paillier_keypair

SEED = 42  # the job seed: split and batches
TEST_FRACTION = 0.2
#: Small, fast jobs: one epoch is enough for every first-batch attack.
PARAMS = HeteroLRParams(key_bits=1024, max_epochs=1, tol=0.0, seed=SEED)
#: The two-party engines every shipped attack runs against (``HeteroLRParams.he_scheme``).
SCHEMES = ("paillier", "ckks")
#: The name tag of the per-row values a party decrypts from a conversion (:func:`.views.decrypted_vectors`).
DECRYPTED_ROWS = {"paillier": "[slots]", "ckks": "[rlwe:rows]"}


@dataclass(frozen=True)
class Breast:
    ids_train: np.ndarray
    xg_tr: np.ndarray
    xg_te: np.ndarray
    xh_tr: np.ndarray
    xh_te: np.ndarray
    y_tr: np.ndarray  # 0/1
    y_te: np.ndarray

    @property
    def n_train(self) -> int:
        return len(self.y_tr)


def load_breast(seed: int = SEED) -> Breast:
    """The job's preprocessing: align on id, split by the job seed, standardize on train rows (clip 3)."""
    ids, xg, xh, y = breast_arrays()
    train, test = split_train_test(list(ids), seed, TEST_FRACTION)
    sg, sh = Standardizer.fit(xg[train], clip=3.0), Standardizer.fit(xh[train], clip=3.0)
    return Breast(ids[train], sg.transform(xg[train]), sg.transform(xg[test]),
                  sh.transform(xh[train]), sh.transform(xh[test]), y[train], y[test])


def first_batch(n_train: int, params: HeteroLRParams = PARAMS) -> np.ndarray:
    return epoch_batches(n_train, params.batch_size_for(n_train), params.seed, 0)[0]


def party_keypair(params: HeteroLRParams, n_train: int, seed: int) -> Any:
    """A party's own key pair for ``params.he_scheme``, reproducible from ``seed``.

    Paillier: ``(public, private)`` of ``params.key_bits``. CKKS: an RLWE secret key
    with the parameters both parties plan from the job's public sizes
    (:func:`fedcredit.protocols.hetero_lr.share_engine.plan_rlwe_for`).
    """
    if params.he_scheme == "ckks":
        batches = epoch_batches(n_train, params.batch_size_for(n_train), params.seed, 0)
        rp = plan_rlwe_for(params, n_train=n_train, max_rows=max(len(b) for b in batches), n_batches=len(batches))
        return rl.keygen(rp, random.Random(seed))
    return paillier_keypair(params.key_bits, seed)


# --------------------------------------------------------------------------- transcripts


@dataclass
class Event:
    """One action of a tapped role: what it sent or what it received (with the payload)."""

    index: int
    direction: str  # "sent" or "received"
    wire: str
    peer: str | None
    payload: Message


@dataclass
class Recorder:
    """Collect a role's sends and receives, in order, via :func:`fedcredit.protocols.core.tap`.

    ``Progress`` actions are kept as markers (direction ``"progress"``, wire =
    stage, payload = the action), so a transcript can be cut into batches.
    """

    events: list[Event] = field(default_factory=list)

    def on_action(self, action: Any) -> None:
        if isinstance(action, Send):
            self.events.append(Event(len(self.events), "sent", action.step.wire,
                                     str(action.to) if action.to else None, action.payload))
        elif isinstance(action, Progress):
            self.events.append(Event(len(self.events), "progress", action.stage, None, action))

    def on_reply(self, action: Recv, payload: Any) -> None:
        self.events.append(Event(len(self.events), "received", action.step.wire,
                                 str(action.frm) if action.frm else None, payload))

    def received(self) -> list[Event]:
        return [e for e in self.events if e.direction == "received"]

    def sent(self) -> list[Event]:
        return [e for e in self.events if e.direction == "sent"]

    def batch_window(self, batch: int, stage: str = "train") -> list[Event]:
        """Events after the ``batch``-th training progress marker and up to the next one (0-based)."""
        marks = [e.index for e in self.events if e.direction == "progress" and e.wire == stage]
        start = marks[batch - 1] + 1 if batch > 0 else 0
        end = marks[batch] if batch < len(marks) else len(self.events)
        return self.events[start:end]


# --------------------------------------------------------------------------- chance bands


def majority_rate(y: np.ndarray) -> float:
    p = float(np.mean(y))
    return max(p, 1.0 - p)


def accuracy_up_to_flip(guess: np.ndarray, truth: np.ndarray) -> float:
    """max(acc, 1 - acc): an attacker who gets every label flipped has still learned them."""
    acc = float(np.mean(np.asarray(guess).astype(int) == np.asarray(truth).astype(int)))
    return max(acc, 1.0 - acc)


def chance_accuracy_bound(rows: int, p_major: float, tests: int = 1, alpha: float = 1e-3) -> float:
    """Upper end of the (1 - alpha) band of label accuracy of a guess independent of the labels.

    If the guess ``b`` does not depend on ``y`` (labels i.i.d. with majority rate
    ``p*``), every row is right with probability ``p`` or ``1 - p``, at most ``p*``:
    the count of right rows is dominated by Binomial(rows, p*). ``max(acc, 1-acc)``
    takes two tails, and ``tests`` guesses a Bonferroni factor, so one false alarm
    in a run has probability at most ``alpha``.
    """
    q = alpha / (2 * tests)
    return float(binom.isf(q, rows, p_major)) / rows  # smallest k with P(X > k) <= q


def chance_correlation_bound(rows: int, tests: int = 1, alpha: float = 1e-3) -> float:
    """|Pearson r| of two independent samples of ``rows`` exceeds this with probability <= alpha/tests.

    Fisher's z: atanh(r) * sqrt(rows - 3) is ~N(0, 1) under independence.
    """
    z = norm.isf(alpha / (2 * tests))
    return float(math.tanh(z / math.sqrt(rows - 3)))


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    if np.std(a) == 0 or np.std(b) == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])
