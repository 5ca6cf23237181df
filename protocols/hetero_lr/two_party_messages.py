"""The two-party LR's messages and step table (see :mod:`.two_party` for the protocol).

Ciphertext-carrying payloads hold either Paillier ciphertexts
(:class:`~.protocol.EncryptedVector`) or ring-LWE ones
(:class:`~fedcredit.protocols.rlwe.scheme.RlweCiphertexts`), by the job's ``he_scheme``;
the step table is the same for both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

from ..core import Aggregate, Ciphertext, Masked, Plaintext, ProtocolStep, Public, Role, StepSpec
from ..paillier import PaillierPublicKey
from ..rlwe.scheme import RlweCiphertexts, RlwePublicKey
from .protocol import EncryptedVector, EpochDecision, HostTestScores

__all__ = [
    "TwoPartyStep",
    "PartySetup",
    "EncryptedShares",
    "MaskedConversion",
    "EncryptedResidualShare",
    "MaskedGradientShare",
    "MaskedLoss",
    "MaskedLossReply",
    "MaskedWeightedResidual",
    "WeightShare",
    "ScoreShares",
    "ValidationScoreShares",
    "ValidationDecision",
    "WeightShares",
    "HeVector",
    "PublicKey",
]

G, H = Role.GUEST, Role.HOST

#: What a ciphertext-carrying payload holds: Paillier ciphertexts or RLWE ones.
HeVector = Union[EncryptedVector, RlweCiphertexts]
#: A party's own public key: Paillier or RLWE.
PublicKey = Union[PaillierPublicKey, RlwePublicKey]


@dataclass(frozen=True)
class PartySetup(Public):
    """A party's own public key (Paillier or RLWE) and the public sizes both sides must agree on."""

    public_key: PublicKey
    n_features: int  # weights of the sender (the guest counts its intercept)
    n_train: int
    n_test: int

    def disclosed(self) -> dict[str, Any]:
        key = self.public_key
        kind = {"rlwe_degree": key.params.degree, "rlwe_log2_q": round(key.params.log_q, 1)} if isinstance(key, RlwePublicKey) \
            else {"paillier_key_bits": key.bits}
        return {**kind, "key_fingerprint": key.fingerprint().hex(),
                "n_features": self.n_features, "training_rows": self.n_train, "test_rows": self.n_test}


@dataclass(frozen=True)
class EncryptedShares(Ciphertext):
    """The sender's share of the receiver's weights, under the *sender's* key.

    Paillier: ``[[b · 2^(kS)]]``, K shifted copies; RLWE: the limbs of ``b`` in one operand ciphertext."""

    key_of_sender = True
    values: HeVector  # K blocks of m values, block k shifted by k * slot_bits


@dataclass(frozen=True)
class MaskedConversion(Masked):
    """The sender's rows times the receiver's weight share, masked, under the receiver's key.

    Paillier: K rows packed per ciphertext, each slot ``X_i b + c + s_i`` with a fresh mask;
    RLWE: each limb product plus a fresh mask, and the rest of the polynomial uniform
    (``slot_bits`` and ``slots`` are 0).
    """

    values: HeVector
    rows: int
    slot_bits: int
    slots: int


@dataclass(frozen=True)
class EncryptedResidualShare(Ciphertext):
    """``[[D^P]]`` per row under the *sender's* key: its share of the residual."""

    key_of_sender = True
    values: HeVector


@dataclass(frozen=True)
class MaskedGradientShare(Masked):
    """``[[X_P^T D^Q + c' + r]]`` under the receiver Q's key, fresh mask per component.

    (The sender adds ``X_P^T D^P``, its own residual share's part, to its own share in the clear.)"""

    values: HeVector


@dataclass(frozen=True)
class MaskedWeightedResidual(Masked):
    """``class_weight``: ``[[c_i D^H_i + r_i]]`` per row, then ``[[Σ c_i D^G_i D^H_i + ρ']]``, under the host's key.

    The guest (who alone knows the weights ``c``) multiplies the host's encrypted residual share by each
    row's weight and masks every value with fresh randomness ``σ`` bits wider than it: the host decrypts
    its share of the weighted residual (uniform mod ``2^ℓ``) and its share of the weighted loss's cross term."""

    values: HeVector


@dataclass(frozen=True)
class MaskedLoss(Masked):
    """``[[Σ 2 D^H D^G + ρ]]`` under the guest's key: the epoch's loss cross term, masked by the host's ``ρ``."""

    values: HeVector


@dataclass(frozen=True)
class MaskedLossReply(Aggregate):
    """``(Σ 2 D^H D^G + ρ + Σ (D^G)²) mod 2^ℓ``. The host made ``ρ``: removing it and adding ``Σ (D^H)²``
    gives ``Σ D²`` of the epoch, that is the epoch's Taylor loss (an agreed aggregate), and nothing more."""

    value: int
    ring_bits: int

    def disclosed(self) -> dict[str, Any]:
        return {"what": "the epoch's sum of squared residuals plus the receiver's own mask: the epoch loss"}


@dataclass(frozen=True)
class ScoreShares(Plaintext):
    """``reveal_weights: shared``: the host's shares of the joint scores ``z`` of the test rows.

    Uniform on their own, but the guest adds its shares: it learns ``z`` of every
    test row (not ``u_H``), which evaluation needs. Declared, as the scoring leak is."""

    values: tuple[int, ...]
    ring_bits: int

    def disclosed(self) -> dict[str, Any]:
        return {"rows": len(self.values), "what": "the joint scores z of the held-out rows (reveal_weights: shared)",
                "why": "the guest needs z to compute AUC and KS; it learns z, not the host's partial scores"}


@dataclass(frozen=True)
class ValidationScoreShares(Plaintext):
    """Early stopping: the host's shares of the joint scores ``z`` of the validation rows, after an epoch.

    As for the test rows, the guest adds its shares and learns ``z`` of every validation row (not ``u_H``):
    it computes the validation metric from them. Declared, as the scoring leak is."""

    values: tuple[int, ...]
    ring_bits: int

    def disclosed(self) -> dict[str, Any]:
        return {"rows": len(self.values), "what": "the joint scores z of the validation rows after one epoch",
                "why": "early stopping: the guest computes the validation loss or AUC from them"}


@dataclass(frozen=True)
class ValidationDecision(Aggregate):
    """Early stopping: the guest's decision after an epoch -- the best epoch so far, and whether to stop."""

    epoch: int
    best_epoch: int
    stop: bool

    def disclosed(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "best_epoch": self.best_epoch, "stop": self.stop}


@dataclass(frozen=True)
class WeightShares:
    """A party's part of a model whose weights stay secret-shared (``reveal_weights: shared``).

    ``own`` is its share of its own weights (the guest's intercept last), ``peer``
    its share of the other party's; both mod ``2^ring_bits`` at scale ``2^frac_bits``.
    Neither part alone says anything about the weights.
    """

    own: tuple[int, ...]
    peer: tuple[int, ...]
    ring_bits: int
    frac_bits: int


@dataclass(frozen=True)
class WeightShare(Aggregate):
    """The sender's share of the receiver's weights (``reveal_weights: owner``): the agreed output."""

    values: tuple[int, ...]
    ring_bits: int

    def disclosed(self) -> dict[str, Any]:
        return {"what": "the sender's additive share of the receiver's own final weights", "weights": len(self.values)}


class TwoPartyStep(ProtocolStep):
    SETUP = StepSpec("lr2.setup", (G, H), (G, H), PartySetup, "each party's own public key and the public sizes")
    SHARES = StepSpec("lr2.shares", (G, H), (G, H), EncryptedShares, "sender's share of the receiver's weights, under the sender's key")
    CONVERSION = StepSpec("lr2.conversion", (G, H), (G, H), MaskedConversion, "X_P b_P, masked, under the receiver's key")
    RESIDUAL = StepSpec("lr2.residual", (G, H), (G, H), EncryptedResidualShare, "sender's share of D, under the sender's key")
    REWEIGHT = StepSpec("lr2.reweight", (G,), (H,), MaskedWeightedResidual,
                        "class_weight: the host's residual share times each row's weight, masked, under the host's key")
    GRADIENT = StepSpec("lr2.gradient", (G, H), (G, H), MaskedGradientShare, "X_P^T D, masked, under the receiver's key")
    MASKED_LOSS = StepSpec("lr2.masked_loss", (H,), (G,), MaskedLoss, "host's part of the epoch's sum of D^2, masked")
    LOSS_REPLY = StepSpec("lr2.loss_reply", (G,), (H,), MaskedLossReply, "the epoch's sum of D^2 plus the host's mask")
    EPOCH_DECISION = StepSpec("lr2.epoch_decision", (H,), (G,), EpochDecision, "mean Taylor loss, stop or continue")
    VALIDATION_SCORE_SHARES = StepSpec("lr2.validation_score_shares", (H,), (G,), ValidationScoreShares,
                                       "early stopping: the host's shares of z on the validation rows, after an epoch")
    VALIDATION_DECISION = StepSpec("lr2.validation_decision", (G,), (H,), ValidationDecision,
                                   "early stopping: the best epoch so far, stop or continue")
    WEIGHT_SHARE = StepSpec("lr2.weight_share", (G, H), (G, H), WeightShare, "reveal_weights: owner")
    TEST_SCORES = StepSpec("lr2.host_test_scores", (H,), (G,), HostTestScores, "u_H on the test rows (the scoring leak)")
    TEST_SCORE_SHARES = StepSpec("lr2.test_score_shares", (H,), (G,), ScoreShares,
                                 "reveal_weights: shared -- the host's shares of z on the test rows")
