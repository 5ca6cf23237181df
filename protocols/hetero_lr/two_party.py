"""Two-party vertical logistic regression: secret-shared weights, one key per party, no key at the coordinator.

The whole exchange, for both roles, is in this module. The coordinator has no
role program here: it relays sealed payloads and records transcripts, and holds
no secret key, so it learns nothing even together with either party.

Notation. ``[[v]]_P`` is ``v`` encrypted under party P's own key (P can
decrypt it; the other party cannot). Every weight vector is additively shared
modulo ``2^ℓ`` (``ℓ = params.ring_bits``, default 160) for the whole training:

* ``w_G = a_G + b_G``: the guest holds ``a_G``, the host holds ``b_G``;
* ``w_H = a_H + b_H``: the host holds ``a_H``, the guest holds ``b_H``.

Fixed point: features ``X`` at scale ``2^fx`` (``feature_frac_bits``), weights
at ``2^fw`` (``share_frac_bits``); ``D = z − 2y = 4·d`` (the Taylor residual
times four, ``y ∈ {−1, 1}``) at ``2^(fx+fw)``. Shares are Python ints in
``[0, 2^ℓ)``.

Per mini-batch B, both parties run the same steps at the same time (P is
either party, Q the other; every step is sent in both directions). Each HE
exchange is one call of the job's share engine (:mod:`.share_engine`:
Paillier, or ring-LWE/CKKS), which owns the packing and the masks::

    P -> Q  lr2.shares      [[b_Q]]_P                           Q's weights' share held by P, under P's key
    P -> Q  lr2.conversion  [[X_P b_P + mask]]_Q                 fresh mask, fresh randomness
            Q opens its share of X_P b_P; P keeps −mask.
    P -> Q  lr2.residual    [[D^P]]_P                            P's share of D, under P's key
    P -> Q  lr2.gradient    [[X_P^T D^Q + mask']]_Q              fresh mask, fresh randomness
            Q opens its share of X_P^T D^Q; P keeps −mask' + X_P^T D^P (its own part, in the clear).
    each    updates both of its weight shares locally (SGD is linear in the gradient),
            truncating its own share of ``lr · g`` (SecureML local truncation).

With ``class_weight`` (Paillier only) the guest, who alone knows each row's weight ``c_i`` (at ``2^-12``),
turns the residual shares into shares of ``c ∘ D`` in one more message per batch, and both gradients
are of ``c ∘ D`` (each party truncates its gradient shares by 12 bits)::

    host -> guest   lr2.residual    [[D^H]]_H                      as above
    guest -> host   lr2.reweight    [[c_i D^H_i + r_i]]_H per row, [[Σ c_i D^G_i D^H_i + ρ']]_H
            the host opens its share of c ∘ D^H (and of the loss cross term); the guest keeps −r, −ρ'
    guest -> host   lr2.residual    [[c ∘ D^G − r]]_G                (instead of [[D^G]]_G)
    guest -> host   lr2.gradient    [[(X_G ∘ c)^T D^H + mask']]_H    its rows scaled by their weights
    host -> guest   lr2.gradient    [[X_H^T (c ∘ D^G − r) + mask]]_G; the host adds X_H^T (c ∘ D^H + r)

The epoch loss is then the weighted ``Σ c D²`` (over ``n``). Nothing about the weights leaves the
guest but masked values: ``r`` is ``σ`` bits wider than ``c_i D^H_i`` and encrypted with blinding
randomness, so the host reads uniform shares (``tests/test_modeling_options.py`` attacks it).

Per epoch (the Taylor loss is ``log 2 − 1/2 + D²/8`` per row, so the epoch
loss is determined by ``Σ D²``)::

    host -> guest   lr2.masked_loss   [[Σ 2 D^H D^G + ρ]]_G   accumulated over the epoch, fresh ρ
    guest -> host   lr2.loss_reply    (that + Σ (D^G)²) mod 2^ℓ
            the host adds −ρ + Σ (D^H)²: Σ D² (mod 2^ℓ; the true sum is smaller)
    host -> guest   lr2.epoch_decision  mean loss, stop or continue      (an agreed aggregate)

The host does the loss's cross term (one multi-exponentiation per batch with
``ℓ``-bit exponents) because the guest has the intercept and usually more
features: it balances the two parties' work per batch.

Early stopping (``x_val`` rows and ``patience``), after each epoch's decision::

    P -> Q  lr2.shares, lr2.conversion   over the validation rows, as in a batch
    host -> guest  lr2.validation_score_shares   the host's shares of z there (masked: uniform mod 2^ℓ)
    guest -> host  lr2.validation_decision       epoch, best epoch so far, stop    (an agreed aggregate)

The guest learns ``z`` of the validation rows after every epoch (as it learns ``z`` of the test
rows); training stops ``patience`` epochs after the best one, and both parties keep their shares
of the best epoch's weights.

After training, ``reveal_weights: owner`` (the default)::

    P -> Q  lr2.weight_share   b_Q: Q learns its own weights w_Q     (the agreed output)
    host -> guest  lr2.host_test_scores  u_H on the test rows        (the declared scoring leak)

or ``reveal_weights: shared`` (the weights are never reconstructed; a model is
two parts, and neither can score alone)::

    P -> Q  lr2.shares, lr2.conversion   over the test rows, as in a batch
    host -> guest  lr2.test_score_shares  the host's shares of z     (masked: uniform mod 2^ℓ)

so the guest learns ``z`` of the test rows, not ``u_H`` (it does not know its
own weights either, so it cannot subtract ``u_G``).

What a party sees. Its own data and shares; ciphertexts under the other's key
(``lr2.shares``, ``lr2.residual``); values it decrypts that are masked by the
other's fresh randomness, uniform and ``mask_security_bits`` (≥ 40, 80 by
default) wider than the value (``lr2.conversion``, ``lr2.gradient``,
``lr2.masked_loss``, ``lr2.reweight``, each slot reduced mod ``2^ℓ`` to a uniform share); the
epoch losses; its own final weights; and, the guest only, ``u_H`` on the test
rows (``z`` only, with ``reveal_weights: shared``) and, with early stopping, ``z`` on the validation
rows after each epoch (the host: the best epoch and when to stop). Never a gradient, a
residual, a score of a training row, an intermediate weight, or a label. Why each detail matters:

1. **Blinding randomness on everything that goes to the key holder.** The
   key holder can recover the randomness ``r`` of what it decrypts, and a
   ciphertext computed from its own ciphertexts carries ``Π r_j^{x_ij}`` with
   ``r_j`` it knows: a fresh DJN encryption on a base of the sender's choosing
   still leaves Legendre symbols (and other characters) of ``r`` readable,
   hence parities of ``x``. So every party encrypts under a key with that
   key's canonical base (:func:`fedcredit.protocols.paillier.canonical_base`), and the
   mask added to such a ciphertext is encrypted with an exponent ``|n| + σ``
   bits long (:meth:`PublicEngine.encrypt_blinding_many`): its randomness is
   within ``2^-σ`` of uniform on the one subgroup all randomness lives in
   (``tests/attacks/test_ciphertext_randomness.py``).
2. **Masks wider than the value, then reduction mod 2^ℓ.** ``s``, ``r`` and
   ``ρ`` are uniform in ``[0, 2^(bound + σ))``: the decrypted integer is
   within statistical distance ``2^-σ`` of the mask alone, and its residue mod
   ``2^ℓ`` is a uniform share.
3. **Packing.** Paillier: the key holder decrypts ``|B|/K`` ciphertexts per
   batch instead of ``|B|``: the sender multiplies ``K`` shifted copies of
   each share, ``[[b_j · 2^(kS)]]``, by the rows' features in one
   multi-exponentiation per ciphertext, and masks all ``K`` slots with one
   fresh encryption. RLWE: one ciphertext × plaintext product computes
   hundreds of rows' limb products (coefficient packing,
   :mod:`fedcredit.protocols.rlwe.scheme`), with every other coefficient masked uniformly.
4. **No plaintext gradient anywhere**, so the first-batch subset-sum attack on
   the coordinated mode (``d = −y/2`` at zero weights) has nothing to work on:
   what the host decrypts in the first batch is uniform whatever the labels.

Resume. Every random draw of a role (its key pair, masks, encryption
randomness) comes from a PRG keyed by a secret seed and re-keyed at every
batch; with ``checkpoint=True`` the role yields a ``Checkpoint`` (stage
``lr2``: seed, weight shares, velocities, losses, the peer's public key, the
epoch's partial loss terms) before its first message, after the setup, after
every batch and after every epoch, and
``resume=`` continues from one exactly, re-creating what it sent since then
byte for byte (:mod:`.two_party_checkpoint`).

Rounding: local truncation makes the sum of the truncated shares off by at
most one unit of ``2^-fw``, and wrong with probability below ``2^-40`` per
truncation; :func:`plan_two_party` checks ``ℓ`` for that before any work.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..core import Checkpoint, Progress, Recv, Role, RoleProgram, Send
from ..errors import BudgetError, ProtocolError
from ..paillier.parallel import MapFn
from .metrics import ks_statistic, roc_auc
from .params import CLASS_WEIGHT_FRAC_BITS, HeteroLRParams, class_weights
from .preprocess import epoch_batches
from .protocol import EvaluationMetrics, GuestModel, HostModel, HostTestScores, decide_epoch, quantize
from .share_engine import ShareEngine, TwoPartyPlan, check_ring_budget, make_share_engine, plan_rlwe_for, plan_two_party
from . import two_party_messages as _messages
from .two_party_checkpoint import CHECKPOINT_STAGE, EpochPrg, TrainCheckpoint, key_from_dict, key_to_dict, train_job_digest
from .two_party_messages import (  # noqa: F401  (all re-exported through _messages.__all__)
    EncryptedResidualShare, EncryptedShares, HeVector, MaskedConversion, MaskedGradientShare, MaskedLoss, MaskedLossReply,
    MaskedWeightedResidual, PartySetup, PublicKey, ScoreShares, TwoPartyStep, ValidationDecision, ValidationScoreShares,
    WeightShare, WeightShares)

__all__ = [
    *_messages.__all__,  # the step table and its messages, re-exported: this module is the protocol's front door
    "TwoPartyPlan",
    "plan_two_party",
    "plan_rlwe_for",
    "make_share_engine",
    "guest_program",
    "host_program",
    "truncate_share",
    "update_shares",
    "StepConstants",
    "to_signed",
    "TrainCheckpoint",
]

G, H = Role.GUEST, Role.HOST
LOG2 = math.log(2.0)


# --------------------------------------------------------------------------- ring arithmetic


def to_signed(v: int, ring_bits: int) -> int:
    """The residue ``v mod 2^ℓ`` as a signed int in ``[-2^(ℓ-1), 2^(ℓ-1))``."""
    v &= (1 << ring_bits) - 1
    return v - (1 << ring_bits) if v >> (ring_bits - 1) else v


def truncate_share(v: int, bits: int, ring_bits: int, first: bool) -> int:
    """One party's share of ``x / 2^bits`` from its share ``v`` of ``x`` (SecureML local truncation).

    The guest (``first``) floors its share; the host floors the negation of its
    own. If ``|x| < 2^k`` the two results add up to ``⌊x / 2^bits⌋`` or one more,
    except with probability ``2^(k + 1 - ℓ)``.
    """
    mask = (1 << ring_bits) - 1
    if first:
        return (v & mask) >> bits
    return (-((-v & mask) >> bits)) & mask


def _ring_matvec(xq: np.ndarray, w: Sequence[int], ring_bits: int) -> list[int]:
    """``X w mod 2^ℓ`` for int64 features and ring-share weights (exact, Python ints)."""
    mask = (1 << ring_bits) - 1
    if xq.shape[1] == 0:
        return [0] * xq.shape[0]
    out = xq.astype(object) @ np.asarray(list(w), dtype=object)
    return [int(v) & mask for v in out]


# --------------------------------------------------------------------------- plan


def _ring_matvec_t(xq: np.ndarray, d: Sequence[int], ring_bits: int) -> list[int]:
    """``X^T d mod 2^ℓ`` for int64 features and ring-share residuals (exact, Python ints)."""
    mask = (1 << ring_bits) - 1
    out = xq.T.astype(object) @ np.asarray(list(d), dtype=object)
    return [int(v) & mask for v in out]


# --------------------------------------------------------------------------- pure steps

@dataclass(frozen=True)
class StepConstants:
    """Public fixed-point constants of one batch's update (every party computes the same ones)."""

    grad: int  # round(2^fe / (4|B|)): X^T D at scale 2^(2fx+fw) -> mean gradient
    l2: int  # round(l2 * 2^fe) * 2^(2fx): the L2 term at the same scale
    lr: int  # round(lr * 2^fe)
    momentum: int  # round(μ * 2^fe); 0 for plain SGD
    fx: int
    fe: int

    @classmethod
    def for_batch(cls, params: HeteroLRParams, rows: int, learning_rate: float) -> "StepConstants":
        fx, fe = params.feature_frac_bits, params.update_frac_bits
        mu = params.momentum if params.optimizer == "nesterov" else 0.0
        return cls(round(2**fe / (4 * rows)), round(params.l2 * 2**fe) << (2 * fx), round(learning_rate * 2**fe),
                   round(mu * 2**fe), fx, fe)


def update_shares(w: Sequence[int], v: Sequence[int], g: Sequence[int], penalized: Sequence[int], k: StepConstants,
                  ring_bits: int, first: bool) -> tuple[list[int], list[int]]:
    """One SGD (or Nesterov) step on one party's shares of a weight vector ``w`` and its velocity ``v``.

    ``g`` is the party's share of ``X^T D`` (scale ``2^(2fx+fw)``). In fixed point at scale ``2^fw``:
    ``grad = X^T D / (4|B|) + l2 w``; plain SGD: ``w ← w − lr·grad``; Nesterov:
    ``v ← μ v + grad``, ``w ← w − lr (grad + μ v)``. Every product by a public
    constant is followed by this party's half of a local truncation.
    """
    mask = (1 << ring_bits) - 1

    def trunc(x: int, bits: int) -> int:
        return truncate_share(x & mask, bits, ring_bits, first)

    new_w, new_v = [], []
    for wi, vi, gi, pen in zip(w, v, g, penalized):
        grad = trunc(k.grad * gi + (k.l2 * wi if pen else 0), 2 * k.fx + k.fe)
        if k.momentum:
            vi = (trunc(k.momentum * vi, k.fe) + grad) & mask
            step = trunc((k.lr * grad << k.fe) + k.lr * k.momentum * vi, 2 * k.fe)
        else:
            step = trunc(k.lr * grad, k.fe)
        new_w.append((wi - step) & mask)
        new_v.append(vi)
    return new_w, new_v


# --------------------------------------------------------------------------- role programs


def quantize_checked(x: np.ndarray, params: HeteroLRParams) -> np.ndarray:
    """Features to int64 fixed point, refusing values outside the public bound ``±2^feature_int_bits``."""
    limit = 2.0**params.feature_int_bits
    if x.size and not np.all(np.abs(x) < limit):
        raise BudgetError(f"a standardized feature reaches |x| >= {limit:g}; enable training.clip "
                          f"or raise feature_int_bits")
    return quantize(x, params.feature_frac_bits)


def _validation_metric(y: np.ndarray, z: np.ndarray, metric: str) -> float:
    """The early-stopping metric of the validation rows: mean logistic loss (lower is better) or AUC."""
    if metric == "auc":
        return roc_auc(y, z)
    return float(np.mean(np.logaddexp(0.0, -(2.0 * y - 1.0) * z)))


def _party(role: Role, x_train: np.ndarray, y_train: np.ndarray | None, x_test: np.ndarray, n_test: int,
           params: HeteroLRParams, rng: Any, keypair: Any, map_fn: MapFn | None, checkpoint: bool = False,
           resume: TrainCheckpoint | None = None, checkpoint_every: int = 1, x_val: np.ndarray | None = None,
           y_val: np.ndarray | None = None) -> RoleProgram:
    """The one program both parties run; the guest additionally holds labels, the intercept and the loss.

    Every random draw comes from an :class:`EpochPrg` seeded once from ``rng`` (or from ``resume``) and re-keyed at
    every batch, so a role resumed from a checkpoint re-creates exactly what it sent before
    (:mod:`.two_party_checkpoint`). With ``checkpoint`` (implied by ``resume``) the role yields a ``Checkpoint``
    before its first message, after the setup, after every ``checkpoint_every``-th batch and after every epoch."""
    guest = role is G
    peer_role = H if guest else G
    n_train, m = x_train.shape
    if n_train < 1:
        raise ProtocolError("nothing to train: the aligned training set is empty")
    checkpoint = checkpoint or resume is not None
    if type(checkpoint_every) is not int or checkpoint_every < 1:
        raise ProtocolError("checkpoint_every must be a positive number of batches")
    if params.l1:
        raise BudgetError("l1 needs each party to hold its own weights to soft-threshold them; the two-party protocol "
                          "keeps every weight secret-shared during training (use l2)")
    validating = x_val is not None and x_val.shape[0] > 0
    if validating:
        if params.patience < 1:
            raise ProtocolError("validation rows need patience >= 1 (early stopping)")
        if checkpoint:
            raise ProtocolError("early stopping does not checkpoint its best weights yet: run it without checkpoints")
        if role is G and (y_val is None or len(y_val) != x_val.shape[0]):  # type: ignore[union-attr]
            raise ProtocolError("the guest's validation rows need their labels")
    job = train_job_digest(role, params, x_train, y_train, x_test, n_test) if checkpoint else b""
    if resume is not None:
        if not isinstance(resume, TrainCheckpoint):
            raise ProtocolError(f"resume must be a TrainCheckpoint, got {type(resume).__name__}")
        resume.validate()
        if resume.role is not role:
            raise ProtocolError(f"checkpoint is for the {resume.role}, not the {role}")
        if resume.job != job:
            raise ProtocolError("checkpoint is for other data or other LR params; cannot resume")
        seed = resume.seed
    else:
        seed = int(rng.getrandbits(256)).to_bytes(32, "little")
    prg = EpochPrg(seed, "keygen")
    sent: dict[str, int] = dict(resume.sent) if resume is not None else {}
    received: dict[str, int] = dict(resume.recv_from) if resume is not None else {}

    def snd(step: TwoPartyStep, payload: Any, to: Role | None = None) -> Send:
        sent[step.wire] = sent.get(step.wire, 0) + 1
        return Send(step, payload, to=to)

    def rcv(step: TwoPartyStep, frm: Role | None = None) -> Recv:
        received[step.wire] = received.get(step.wire, 0) + 1
        return Recv(step, frm=frm)

    L, fx, fw = params.ring_bits, params.feature_frac_bits, params.share_frac_bits
    ring = (1 << L) - 1
    xq = quantize_checked(x_train, params)
    penalized = [1] * m
    if guest:
        xq = np.hstack([xq, np.full((n_train, 1), 1 << fx, dtype=np.int64)])  # intercept last, unpenalized
        penalized = penalized + [0]
        m += 1
        y_pm = 2 * np.asarray(y_train, dtype=np.int64) - 1
    weighted = params.class_weight is not None
    fc = CLASS_WEIGHT_FRAC_BITS if weighted else 0
    cq = np.zeros(0, dtype=np.int64)
    if weighted and y_train is not None:  # each row's class weight at 2^fc: known to the guest only
        cq = np.round(class_weights(y_train, params.class_weight) * 2**fc).astype(np.int64)
    batch_size = params.batch_size_for(n_train)
    layout = epoch_batches(n_train, batch_size, params.seed, 0)  # the sizes are the same every epoch
    n_batches, max_rows = len(layout), max(len(b) for b in layout)

    check_ring_budget(params, n_train)
    eng: ShareEngine = make_share_engine(params, prg, n_train=n_train, max_rows=max_rows, n_batches=n_batches,
                                         keypair=keypair, map_fn=map_fn)

    a, va = [0] * m, [0] * m  # own share of own weights (and of their Nesterov velocity)
    b: list[int] = []  # own share of the peer's weights (and velocity)
    vb: list[int] = []
    losses: list[float] = []
    start, start_batch, done, peer_state = 0, 0, False, None
    if resume is not None and resume.peer is not None:
        start, start_batch, done, peer_state = resume.epoch, resume.batch, resume.done, dict(resume.peer)
        a, va, b, vb, losses = list(resume.a), list(resume.va), list(resume.b), list(resume.vb), list(resume.losses)
        if len(a) != m:
            raise ProtocolError("the checkpoint's weight shares do not match this party's features")

    def save(stage_epoch: int, stage_done: bool, batch: int = 0, sq: int = 0, acc: Any = None) -> Checkpoint:
        cp = TrainCheckpoint(role, job, seed, stage_epoch, stage_done, peer_state, tuple(a), tuple(va), tuple(b), tuple(vb),
                             tuple(losses), dict(sent), dict(received), batch, sq, eng.dump_loss(acc) if batch else None)
        return Checkpoint(CHECKPOINT_STAGE, cp.to_dict())

    if peer_state is None:
        if checkpoint:
            yield save(0, False)  # the seed is on disk before anything derived from it leaves
        yield snd(TwoPartyStep.SETUP, PartySetup(eng.public_key, m, n_train, n_test), to=peer_role)
        setup: PartySetup = yield rcv(TwoPartyStep.SETUP, frm=peer_role)
        if (setup.n_train, setup.n_test) != (n_train, n_test):
            raise ProtocolError("the parties disagree on the aligned training/test sizes")
        if setup.public_key == eng.public_key:
            raise ProtocolError("the peer presented this party's own public key")
        m_peer, peer_key = setup.n_features, setup.public_key
        if not 1 <= m_peer:
            raise ProtocolError("lr2.setup: the peer has no weights")
        b, vb = [0] * m_peer, [0] * m_peer
        if checkpoint:
            peer_state = {"n_features": m_peer, "key": key_to_dict(peer_key)}
    else:
        m_peer = int(peer_state["n_features"])
        peer_key = key_from_dict(peer_state["key"], getattr(eng, "rlwe", None))
        if len(b) != m_peer:
            raise ProtocolError("the checkpoint's shares of the peer's weights do not match its setup")
    eng.bind(peer_key, m_own=m, m_peer=m_peer)
    if checkpoint and resume is None:
        yield save(0, False)

    peer_pen = [1] * m_peer if guest else [1] * (m_peer - 1) + [0]  # the guest's intercept takes no L2

    def joint_score_shares(xt: np.ndarray) -> Any:
        """This party's shares of ``z`` on rows ``xt`` (quantized, the guest's with the intercept column), by one
        more conversion each way per batch-sized chunk (the engines' layouts are sized for a batch)."""
        z_share: list[int] = []
        for lo in range(0, xt.shape[0], max_rows):
            xc = xt[lo : lo + max_rows]
            yield snd(TwoPartyStep.SHARES, eng.encrypt_weight_share(b), to=peer_role)
            peer_shares = yield rcv(TwoPartyStep.SHARES, frm=peer_role)
            conv, own_part = eng.convert(peer_shares, xc)
            yield snd(TwoPartyStep.CONVERSION, conv, to=peer_role)
            peer_part = eng.open_conversion((yield rcv(TwoPartyStep.CONVERSION, frm=peer_role)), xc.shape[0])
            z_share += [(u + c + p) & ring for u, c, p in zip(_ring_matvec(xc, a, L), own_part, peer_part)]
        return z_share

    xv = np.zeros((0, m), dtype=np.int64)
    if validating:
        assert x_val is not None
        xv = quantize_checked(x_val, params)
        if guest:
            xv = np.hstack([xv, np.full((xv.shape[0], 1), 1 << fx, dtype=np.int64)])
    history: list[float] = []
    best: tuple[list[int], list[int]] | None = None
    best_epoch, best_value = 0, math.nan
    epoch = start - 1
    if start_batch > n_batches:
        raise ProtocolError("the checkpoint's batch is past the epoch's last batch")
    for epoch in range(start, params.max_epochs if not done else start):
        lr = params.learning_rate_at(epoch)
        first = start_batch if epoch == start else 0
        loss_acc: Any = None
        sq_own = 0
        if first and resume is not None:  # resumed mid-epoch: the epoch's partial loss terms
            loss_acc, sq_own = eng.load_loss(resume.loss_acc), resume.sq
        for bi, rows in enumerate(epoch_batches(n_train, batch_size, params.seed, epoch)):
            if bi < first:
                continue
            prg.reseed(f"epoch {epoch} batch {bi}")  # a batch's randomness does not depend on where a run started
            xb = xq[rows]
            # 1. shares of the scores
            yield snd(TwoPartyStep.SHARES, eng.encrypt_weight_share(b), to=peer_role)
            peer_shares: EncryptedShares = yield rcv(TwoPartyStep.SHARES, frm=peer_role)
            conv, own_part = eng.convert(peer_shares, xb)
            yield snd(TwoPartyStep.CONVERSION, conv, to=peer_role)
            peer_conv: MaskedConversion = yield rcv(TwoPartyStep.CONVERSION, frm=peer_role)
            peer_part = eng.open_conversion(peer_conv, len(rows))
            # 2. shares of D = z - 2y (scale 2^(fx+fw)); the guest subtracts its labels
            local = _ring_matvec(xb, a, L)
            d_own = [(u + c + p) & ring for u, c, p in zip(local, own_part, peer_part)]
            if guest:
                two_y = 2 << (fx + fw)
                d_own = [(d - two_y * int(yv)) & ring for d, yv in zip(d_own, y_pm[rows])]
            if not weighted:
                yield snd(TwoPartyStep.RESIDUAL, eng.encrypt_residual(d_own), to=peer_role)
                peer_resid: EncryptedResidualShare = yield rcv(TwoPartyStep.RESIDUAL, frm=peer_role)
                # 3. shares of the gradients: X^T D = X^T [[D^peer]] (masked, with the peer) + X^T D^own (here)
                gmsg, g_mask = eng.masked_gradient(peer_resid, xb)
                yield snd(TwoPartyStep.GRADIENT, gmsg, to=peer_role)
                g_own = [(gm + gl) & ring for gm, gl in zip(g_mask, _ring_matvec_t(xb, d_own, L))]
                if not guest:  # the loss's cross term, while the guest works on its larger gradient: [[Σ 2 D^H D^G]]_G
                    loss_acc = eng.loss_accumulate(loss_acc, peer_resid, [(2 * d) & ring for d in d_own])
                sq_own = (sq_own + sum(d * d for d in d_own)) & ring
                g_peer = eng.open_gradient((yield rcv(TwoPartyStep.GRADIENT, frm=peer_role)))
            elif guest:  # class weights c (the guest's alone), at 2^fc: gradients of c ∘ D
                c: np.ndarray = cq[rows]
                host_resid: EncryptedResidualShare = yield rcv(TwoPartyStep.RESIDUAL, frm=peer_role)  # [[D^H]]_H
                cd = [(int(ci) * d) & ring for ci, d in zip(c, d_own)]  # c ∘ D^G
                rmsg, r_share, rho_share = eng.reweight(host_resid, [int(ci) for ci in c], cd)
                yield snd(TwoPartyStep.REWEIGHT, rmsg, to=peer_role)  # the host's share becomes c ∘ D^H + r
                yield snd(TwoPartyStep.RESIDUAL, eng.encrypt_residual([(v + r) & ring for v, r in zip(cd, r_share)]),
                          to=peer_role)  # [[c ∘ D^G − r]]_G
                # the guest's block: (X_G ∘ c)^T [[D^H]] (masked) + X_G^T (c ∘ D^G) here
                gmsg, g_mask = eng.masked_gradient(host_resid, xb * c[:, None])
                yield snd(TwoPartyStep.GRADIENT, gmsg, to=peer_role)
                g_own = [(gm + gl) & ring for gm, gl in zip(g_mask, _ring_matvec_t(xb, cd, L))]
                sq_own = (sq_own + sum(int(ci) * d * d for ci, d in zip(c, d_own)) + rho_share) & ring  # Σ c (D^G)² − ρ'
                g_peer = eng.open_gradient((yield rcv(TwoPartyStep.GRADIENT, frm=peer_role)))
            else:
                yield snd(TwoPartyStep.RESIDUAL, eng.encrypt_residual(d_own), to=peer_role)
                wd, loss_piece = eng.open_reweight((yield rcv(TwoPartyStep.REWEIGHT, frm=peer_role)), len(rows))
                guest_resid: EncryptedResidualShare = yield rcv(TwoPartyStep.RESIDUAL, frm=peer_role)
                gmsg, g_mask = eng.masked_gradient(guest_resid, xb)  # X_H^T [[c ∘ D^G − r]] (masked)
                yield snd(TwoPartyStep.GRADIENT, gmsg, to=peer_role)
                g_own = [(gm + gl) & ring for gm, gl in zip(g_mask, _ring_matvec_t(xb, wd, L))]  # + X_H^T (c ∘ D^H + r)
                # Σ c D² = Σ c (D^G)² − ρ' [guest] + Σ (c D^G − r) D^H [under the guest's key] + Σ (c D^H + r) D^H
                #          + (Σ c D^G D^H + ρ') [opened from lr2.reweight]
                loss_acc = eng.loss_accumulate(loss_acc, guest_resid, d_own)
                sq_own = (sq_own + sum(w * d for w, d in zip(wd, d_own)) + loss_piece) & ring
                g_peer = eng.open_gradient((yield rcv(TwoPartyStep.GRADIENT, frm=peer_role)))
            if weighted:  # both gradients' shares back to the unweighted scale (local truncation by fc bits)
                g_own = [truncate_share(g, fc, L, guest) for g in g_own]
                g_peer = [truncate_share(g, fc, L, guest) for g in g_peer]
            # 4. local updates of both shares: w -= lr/(4|B|) g + lr l2 w
            k = StepConstants.for_batch(params, len(rows), lr)
            a, va = update_shares(a, va, g_own, penalized, k, L, guest)
            b, vb = update_shares(b, vb, g_peer, peer_pen, k, L, guest)
            if checkpoint and (bi + 1) % checkpoint_every == 0 and bi + 1 < n_batches:
                # what a restart must fetch again is at most checkpoint_every batches' messages
                yield save(epoch, False, bi + 1, sq_own, loss_acc)
            yield Progress("train", epoch * n_batches + bi + 1, params.max_epochs * n_batches, {"epoch": epoch + 1})
        prg.reseed(f"epoch {epoch} loss")
        # epoch loss: Σ D² = Σ (D^G)² + 2 Σ D^G D^H + Σ (D^H)²  (mod 2^ℓ; the true sum is smaller)
        if not guest:
            masked, cross_share = eng.loss_mask(loss_acc)
            yield snd(TwoPartyStep.MASKED_LOSS, masked)
            reply: MaskedLossReply = yield rcv(TwoPartyStep.LOSS_REPLY)
            if reply.ring_bits != L:
                raise ProtocolError("lr2.loss_reply uses another ring")
            sum_d2 = (reply.value + cross_share + sq_own) & ring
            mean_d2 = sum_d2 / 2.0 ** (2 * (fx + fw) + fc) / n_train  # with class weights: Σ c D² / n
            decision = decide_epoch(losses, LOG2 - 0.5 + mean_d2 / 8.0, epoch, params)
            yield snd(TwoPartyStep.EPOCH_DECISION, decision)
        else:
            mloss: MaskedLoss = yield rcv(TwoPartyStep.MASKED_LOSS)
            value = eng.open_loss(mloss)
            yield snd(TwoPartyStep.LOSS_REPLY, MaskedLossReply((value + sq_own) & ring, L))
            decision = yield rcv(TwoPartyStep.EPOCH_DECISION)
        losses.append(decision.loss)
        stop = bool(decision.stop)
        if validating:  # early stopping: the guest scores the validation rows as it scores the test rows
            z_val = yield from joint_score_shares(xv)
            if guest:
                other_v: ValidationScoreShares = yield rcv(TwoPartyStep.VALIDATION_SCORE_SHARES)
                if other_v.ring_bits != L or len(other_v.values) != len(z_val):
                    raise ProtocolError("lr2.validation_score_shares do not match the validation rows")
                zv = np.array([to_signed(s_ + o, L) / 2.0 ** (fx + fw) for s_, o in zip(z_val, other_v.values)])
                metric = _validation_metric(np.asarray(y_val), zv, params.validation_metric)
                history.append(metric)
                better = metric < best_value if params.validation_metric == "loss" else metric > best_value
                if best is None or better:
                    best_epoch, best_value = epoch + 1, metric
                vdec = ValidationDecision(epoch + 1, best_epoch, stop or epoch + 1 - best_epoch >= params.patience)
                yield snd(TwoPartyStep.VALIDATION_DECISION, vdec)
            else:
                yield snd(TwoPartyStep.VALIDATION_SCORE_SHARES, ValidationScoreShares(tuple(z_val), L))
                vdec = yield rcv(TwoPartyStep.VALIDATION_DECISION)
                if vdec.epoch != epoch + 1 or not (best_epoch <= vdec.best_epoch <= epoch + 1) or (stop and not vdec.stop):
                    raise ProtocolError("lr2.validation_decision does not follow the epochs")
                best_epoch = vdec.best_epoch
            if best_epoch == epoch + 1:
                best = (list(a), list(b))
            stop = vdec.stop
        if checkpoint:
            yield save(epoch + 1, stop or epoch + 1 >= params.max_epochs)
        if stop:
            break
    epochs_run = len(losses)
    if best is not None:  # early stopping: both parties keep their shares of the best epoch's weights
        a, b = best
    prg.reseed("final")

    if params.reveal_weights == "shared":
        # The weights stay shared. Shares of z on the test rows, by one more conversion each way.
        xt = quantize_checked(x_test, params)
        if guest:
            xt = np.hstack([xt, np.full((xt.shape[0], 1), 1 << fx, dtype=np.int64)])
        z_share = yield from joint_score_shares(xt)  # the best epoch's shares when early stopping kept them
        return WeightShares(tuple(a), tuple(b), L, fw), z_share, epochs_run, tuple(losses), (tuple(history), best_epoch or None)
    # reveal_weights: owner -- each learns its own weights, nothing else
    yield Send(TwoPartyStep.WEIGHT_SHARE, WeightShare(tuple(b), L), to=peer_role)
    other: WeightShare = yield Recv(TwoPartyStep.WEIGHT_SHARE, frm=peer_role)
    if other.ring_bits != L or len(other.values) != m:
        raise ProtocolError("lr2.weight_share does not match this party's weights")
    weights = np.array([to_signed(ai + bi_, L) / 2.0**fw for ai, bi_ in zip(a, other.values)])
    return weights, None, epochs_run, tuple(losses), (tuple(history), best_epoch or None)


def guest_program(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    params: HeteroLRParams,
    rng: Any,
    *,
    keypair: Any = None,
    map_fn: MapFn | None = None,
    checkpoint: bool = False,
    resume: TrainCheckpoint | None = None,
    checkpoint_every: int = 1,
    x_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
) -> RoleProgram:
    """The guest (label holder). ``x_*`` standardized, ``y`` in {0, 1}. Returns :class:`GuestModel`.

    ``keypair``: the guest's own key pair for the job's ``he_scheme`` (a Paillier
    ``(public, private)`` pair or an RLWE secret key; generated from a seed drawn from ``rng`` if
    omitted). ``map_fn`` spreads Paillier encryption over the caller's pool. ``checkpoint``: yield
    a :class:`~fedcredit.protocols.core.Checkpoint` (a :class:`TrainCheckpoint`, secrets included) at every
    boundary (every ``checkpoint_every``-th batch within an epoch); ``resume``: the last of them, to continue from it
    exactly (same data, params and ``keypair``).
    ``x_val``, ``y_val``: validation rows (disjoint from both), for early stopping with ``params.patience``:
    the guest learns their joint scores after every epoch, and the model is the best epoch's."""
    m = x_train.shape[1]
    model, z_share, epochs, losses, (hist, best) = yield from _party(
        G, x_train, y_train, x_test, len(y_test), params, rng, keypair, map_fn, checkpoint, resume, checkpoint_every,
        x_val, y_val)
    yt = np.asarray(y_test)
    if isinstance(model, WeightShares):
        other: ScoreShares = yield Recv(TwoPartyStep.TEST_SCORE_SHARES)
        if other.ring_bits != model.ring_bits or len(other.values) != len(y_test):
            raise ProtocolError("lr2.test_score_shares do not match the test rows")
        scale = 2.0 ** (params.feature_frac_bits + model.frac_bits)
        z = np.array([to_signed(a + b, model.ring_bits) / scale for a, b in zip(z_share, other.values)])
        metrics = EvaluationMetrics(roc_auc(yt, z), ks_statistic(yt, z), int(len(yt)), int(np.sum(yt)))
        return GuestModel(None, None, epochs, losses, metrics, z, shares=model, validation=hist, best_epoch=best)
    weights = model
    test: HostTestScores = yield Recv(TwoPartyStep.TEST_SCORES)
    if len(test.scores) != len(y_test):
        raise ProtocolError("host test scores do not match the test rows")
    z = x_test @ weights[:m] + weights[m] + np.asarray(test.scores, dtype=float)
    metrics = EvaluationMetrics(roc_auc(yt, z), ks_statistic(yt, z), int(len(yt)), int(np.sum(yt)))
    return GuestModel(weights[:m].copy(), float(weights[m]), epochs, losses, metrics, z, validation=hist, best_epoch=best)


def host_program(
    x_train: np.ndarray,
    x_test: np.ndarray,
    params: HeteroLRParams,
    rng: Any,
    *,
    keypair: Any = None,
    map_fn: MapFn | None = None,
    checkpoint: bool = False,
    resume: TrainCheckpoint | None = None,
    checkpoint_every: int = 1,
    x_val: np.ndarray | None = None,
) -> RoleProgram:
    """The host (feature holder, no labels). Returns :class:`HostModel`. ``checkpoint``, ``resume``, ``x_val``: as
    for the guest (the host learns only the best epoch and when to stop)."""
    model, z_share, epochs, losses, (_, best) = yield from _party(
        H, x_train, None, x_test, x_test.shape[0], params, rng, keypair, map_fn, checkpoint, resume, checkpoint_every,
        x_val)
    if isinstance(model, WeightShares):
        yield Send(TwoPartyStep.TEST_SCORE_SHARES, ScoreShares(tuple(z_share), model.ring_bits))
        return HostModel(None, epochs, losses, shares=model, best_epoch=best)
    yield Send(TwoPartyStep.TEST_SCORES, HostTestScores(tuple(float(v) for v in x_test @ model)))
    return HostModel(model.copy(), epochs, losses, best_epoch=best)
