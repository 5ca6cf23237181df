"""Secure per-bin label counts: the platform learns the bads and goods of its own bins, nothing per row.

Roles: the guest (the bank) holds the 0/1 labels ``y`` of the aligned rows
and a Paillier key pair of its own; the host (the platform) holds its features
and has binned them itself (:mod:`.bins`: quantile by default, every bin at
least ``min_bin_rows`` rows). Nobody else takes part; the coordinator relays.

==================  ==========  ================  ===============================================
step                direction   payload           content
==================  ==========  ================  ===============================================
``bin.setup``       guest→host  LabelKey          the bank's public key, the number of rows
``bin.layout``      host→guest  BinLayout         rows per bin of each of the host's features
``bin.decision``    guest→host  LayoutDecision    whether every bin meets the bank's minimum
``bin.labels``      guest→host  EncryptedLabels   ``[[y_i]]`` under the bank's key, one message
                                                  per batch of ``batch_size`` rows, row order
``bin.masked_sums`` host→guest  MaskedBinSums     per bin ``k``: ``[[Σ_{i∈k} y_i + m_k]]``, a fresh
                                                  mask per bin, blinded (see below)
``bin.reply``       guest→host  MaskedCounts      the decrypted ``Σ y + m_k`` per bin
``bin.iv``          host→guest  SharedIv          only with ``share_iv``: IV per host feature
``bin.bank_iv``     guest→host  SharedIv          only with ``share_bank_iv``: IV per bank feature
==================  ==========  ================  ===============================================

The host removes ``m_k``: bads per bin, and goods = rows − bads. It then merges
bins with fewer than ``min_bin_events`` bads or goods into a neighbour, and
optionally merges further on the counts (chi-merge or monotonic WOE), and
computes WOE and IV of its own features (:mod:`.woe`).

Who learns what (semi-honest parties: each follows the protocol and tries to
learn more from what it sees):

* **The bank** learns the number of the platform's features, of bins per
  feature, and the rows of each bin (``bin.layout``: the sizes, not which rows,
  not the cut points or feature names), and, only with ``share_iv``, the IV of
  each platform feature (the platform learns the bank's IV only with ``share_bank_iv``). What it decrypts, ``Σ y + m_k`` with ``m_k`` uniform
  in ``[0, 2^(b + σ))`` where ``2^b > rows``, is within statistical distance
  ``2^-σ`` of ``m_k`` alone (``σ = mask_bits``, 80 by default): it says nothing
  about the bin's count. Its ciphertext randomness says nothing either: the
  bank knows the randomness of its own ``[[y_i]]`` and could recover that of
  the product of a bin's ciphertexts, which would say which rows are in the
  bin, so the host multiplies in a blinding encryption of ``m_k`` whose
  exponent is ``|n| + σ`` bits on the key's canonical base
  (:meth:`fedcredit.protocols.hetero_lr.he.PaillierPublic.encrypt_blinding_many`).
* **The platform** learns, for each bin of its own features, the number of
  bads and goods (the intended disclosure: it is what WOE and IV are computed
  from). Nothing per row: the labels it holds are ciphertexts under the
  bank's key, and the reply is per bin. Under labels permuted so that every
  bin keeps its counts, its whole view is the same
  (``tests/attacks/test_binning_labels.py``).

The minimum-bin-size defence. A platform that made bins of one row would read
labels off the counts. So the platform sends its bin sizes in the clear and
the bank refuses (:class:`BinsTooSmall`, before any label is encrypted) a
layout with a bin under its own ``min_bin_rows`` or whose sizes do not add up
to the number of rows per feature. Below-minimum event counts are merged
before anything is released (WOE, IV, scorecard points). Limits, stated:
the sizes and the sums are the platform's word (a malicious platform could lie
about a size, send one row's ciphertext in place of a bin's sum, or make two
features whose bins differ in one row and read that row's label from the
difference, ``test_known_limit_nested_bins_of_a_malicious_platform``: the
semi-honest assumption covers all three); and a bin of at least
``min_bin_rows`` rows with no bads does tell the platform those rows are all
good -- exact per-bin counts disclose that by definition.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from ..core import Aggregate, Ciphertext, Masked, Progress, ProtocolStep, Public, Role, RoleProgram, Send, StepSpec, batches, n_batches, recv_typed
from ..errors import BudgetError, DataError, KeyMismatchError, ProtocolError
from ..hetero_lr.he import PaillierPublic, PaillierSecret
from ..paillier import PaillierPrivateKey, PaillierPublicKey
from ..paillier.parallel import MapFn
from .bins import BinCounts, FeatureBins, chi_merge, count_bins, merge_small, monotonic_merge
from .woe import WoeTable, woe_table

__all__ = [
    "BinningStep",
    "SecureBinningParams",
    "LabelKey",
    "BinLayout",
    "LayoutDecision",
    "EncryptedLabels",
    "MaskedBinSums",
    "MaskedCounts",
    "SharedIv",
    "BinsTooSmall",
    "GuestBinningView",
    "HostBinningResult",
    "check_layout",
    "finish_bins",
    "own_tables",
    "guest_program",
    "host_program",
]

G, H = Role.GUEST, Role.HOST
MERGES = ("none", "chimerge", "monotonic")


class BinsTooSmall(ProtocolError):
    """The bank refused the platform's bin layout: a bin under its minimum, or sizes that do not add up.

    Raised by the bank before it encrypts a single label, and by the platform
    once told so. The public message names the policy only, never a size.
    """

    code = "MIN_BIN_ROWS"


@dataclass(frozen=True)
class SecureBinningParams:
    """What both parties agree on for the secure per-bin counts (the job's binning section).

    Attributes:
        min_bin_rows: the smallest bin, in rows, either side accepts (the bank may
            hold a stricter minimum of its own: :func:`guest_program`'s ``min_bin_rows``).
        min_bin_events: bins with fewer bads or fewer goods are merged before release.
        mask_bits: statistical security σ of the masks (≥ 40).
        share_iv: whether the platform's IV per feature goes to the bank.
        share_bank_iv: whether the bank's IV per feature (of its own features) goes to the platform.
        batch_size: labels per ``bin.labels`` message.
        smoothing: added to both counts of a bin with no bads or no goods (WOE).
        merge: ``none``, ``chimerge`` or ``monotonic``: merging on the counts after the protocol.
        max_bins: chi-merge's largest number of numeric bins.
    """

    min_bin_rows: int = 50
    min_bin_events: int = 1
    mask_bits: int = 80
    share_iv: bool = False
    share_bank_iv: bool = False
    batch_size: int = 4096
    smoothing: float = 0.5
    merge: str = "none"
    max_bins: int = 6

    def __post_init__(self) -> None:
        if self.min_bin_rows < 1 or self.min_bin_events < 0:
            raise DataError("min_bin_rows must be >= 1 and min_bin_events >= 0")
        if self.mask_bits < 40:
            raise DataError("mask_bits must be >= 40")
        if self.batch_size < 1:
            raise DataError("batch_size must be >= 1")
        if self.merge not in MERGES:
            raise DataError(f"merge must be one of {MERGES}")


# --------------------------------------------------------------------------- messages


@dataclass(frozen=True)
class LabelKey(Public):
    """The bank's own Paillier public key and the number of aligned rows."""

    public_key: PaillierPublicKey
    n_rows: int

    def disclosed(self) -> dict[str, Any]:
        return {"paillier_key_bits": self.public_key.bits, "key_fingerprint": self.public_key.fingerprint().hex(),
                "rows": self.n_rows}


@dataclass(frozen=True)
class BinLayout(Public):
    """Rows per bin, one tuple per platform feature (in the platform's order; no names, no cut points)."""

    bin_rows: tuple[tuple[int, ...], ...]

    def disclosed(self) -> dict[str, Any]:
        return {"features": len(self.bin_rows), "bins": [len(b) for b in self.bin_rows],
                "smallest_bin_rows": min((min(b) for b in self.bin_rows if b), default=0)}


@dataclass(frozen=True)
class LayoutDecision(Public):
    """The bank's answer to the layout: go on, or stop (a bin under its minimum, or sizes that do not add up)."""

    accepted: bool

    def disclosed(self) -> dict[str, Any]:
        return {"accepted": self.accepted}


@dataclass(frozen=True)
class EncryptedLabels(Ciphertext):
    """One batch of ``[[y_i]]`` under the bank's (the sender's) own key, in row order."""

    key_of_sender = True
    key_fingerprint: bytes
    values: tuple[Any, ...]


@dataclass(frozen=True)
class MaskedBinSums(Masked):
    """``[[Σ_{i∈k} y_i + m_k]]`` per bin (all features' bins in order), under the receiver's key, blinded."""

    key_fingerprint: bytes
    values: tuple[Any, ...]


@dataclass(frozen=True)
class MaskedCounts(Aggregate):
    """The decrypted ``Σ y + m_k`` per bin: the platform made ``m_k``, so it learns its per-bin bads."""

    values: tuple[int, ...]

    def disclosed(self) -> dict[str, Any]:
        return {"bins": len(self.values), "what": "the bads of each of the receiver's own bins, plus the receiver's own masks"}


@dataclass(frozen=True)
class SharedIv(Aggregate):
    """``share_iv`` / ``share_bank_iv``: the IV of each of the sender's own features (names as the sender calls them)."""

    iv: tuple[tuple[str, float], ...]

    def disclosed(self) -> dict[str, Any]:
        return {"iv": dict(self.iv)}


class BinningStep(ProtocolStep):
    SETUP = StepSpec("bin.setup", (G,), (H,), LabelKey, "the bank's public key and the number of rows")
    LAYOUT = StepSpec("bin.layout", (H,), (G,), BinLayout, "rows per bin of each platform feature")
    DECISION = StepSpec("bin.decision", (G,), (H,), LayoutDecision, "the bank accepts the layout or stops")
    LABELS = StepSpec("bin.labels", (G,), (H,), EncryptedLabels, "[[y]] under the bank's key, one batch per message")
    MASKED_SUMS = StepSpec("bin.masked_sums", (H,), (G,), MaskedBinSums, "[[bads per bin + mask]] under the bank's key")
    REPLY = StepSpec("bin.reply", (G,), (H,), MaskedCounts, "bads per bin + the platform's masks")
    IV = StepSpec("bin.iv", (H,), (G,), SharedIv, "share_iv only: IV per platform feature")
    BANK_IV = StepSpec("bin.bank_iv", (G,), (H,), SharedIv, "share_bank_iv only: IV per bank feature")


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class GuestBinningView:
    """What the bank ends with: the platform's bin sizes and, with ``share_iv``, its IV per feature."""

    bin_rows: tuple[tuple[int, ...], ...]
    host_iv: dict[str, float] | None = None


@dataclass(frozen=True)
class HostBinningResult:
    """What the platform ends with: per feature, the counts of the bins it sent, and the released WOE tables."""

    sent_bins: tuple[FeatureBins, ...]
    counts: tuple[BinCounts, ...] = field(repr=False)
    tables: tuple[WoeTable, ...]
    bank_iv: dict[str, float] | None = None

    @property
    def iv(self) -> dict[str, float]:
        return {t.name: t.iv for t in self.tables}


# --------------------------------------------------------------------------- pure steps


def check_layout(bin_rows: Sequence[Sequence[int]], n_rows: int, min_bin_rows: int) -> bool:
    """True if every bin has at least ``min_bin_rows`` rows and every feature's bins add up to ``n_rows``."""
    return all(len(f) > 0 and sum(f) == n_rows and min(f) >= min_bin_rows for f in bin_rows)


def finish_bins(bins: FeatureBins, counts: BinCounts, params: SecureBinningParams) -> WoeTable:
    """Merge bins under ``min_bin_events`` bads or goods (and rows), then ``params.merge``, then WOE/IV.

    The same for the bank's own features (counts from its labels) and the
    platform's (counts from the protocol). Only the result is released.
    """
    bins, counts = merge_small(bins, counts, params.min_bin_rows, params.min_bin_events)
    if params.merge == "chimerge":
        bins, counts = chi_merge(bins, counts, params.max_bins)
    elif params.merge == "monotonic":
        bins, counts = monotonic_merge(bins, counts)
    return woe_table(bins, counts, params.smoothing)


def own_tables(x: np.ndarray, y: np.ndarray, bins: Sequence[FeatureBins], params: SecureBinningParams) -> tuple[WoeTable, ...]:
    """The label holder's WOE tables of its own features: plaintext counts, then :func:`finish_bins`."""
    x = np.asarray(x, dtype=float)
    labels = np.asarray(_labels01(y))
    return tuple(finish_bins(b, count_bins(b, x[:, j], labels), params) for j, b in enumerate(bins))


def _labels01(y: np.ndarray) -> list[int]:
    y = np.asarray(y)
    if y.ndim != 1 or not np.isin(y, (0, 1)).all():
        raise DataError("labels must be a vector of 0 and 1")
    return [int(v) for v in y]


def _mask_bits(n_rows: int, params: SecureBinningParams) -> int:
    return max(1, n_rows.bit_length()) + params.mask_bits


def _check_budget(public_key: PaillierPublicKey, n_rows: int, params: SecureBinningParams) -> None:
    """Σ y + m < 2^(b + σ + 1) must stay below the plaintext space (checked before any work)."""
    if _mask_bits(n_rows, params) + 1 > public_key.bits - 2:
        raise BudgetError(f"a {public_key.bits}-bit key cannot hold {n_rows} rows' sums with {params.mask_bits}-bit masks")


# --------------------------------------------------------------------------- role programs


def guest_program(y: np.ndarray, keypair: tuple[PaillierPublicKey, PaillierPrivateKey], params: SecureBinningParams,
                  rng: Any, *, min_bin_rows: int | None = None, own_iv: Mapping[str, float] | None = None,
                  map_fn: MapFn | None = None) -> RoleProgram:
    """The bank: encrypt its labels, decrypt only masked per-bin sums, refuse bins under its minimum.

    Args:
        y: 0/1 labels of the aligned rows, in the row order both parties share.
        keypair: the bank's own Paillier key pair.
        params: the agreed parameters.
        rng: randomness for the encryptions (``secrets.SystemRandom()`` in production).
        min_bin_rows: the bank's own minimum bin size (default ``params.min_bin_rows``).
        own_iv: the IV of the bank's own features (:func:`own_tables`), sent only with ``share_bank_iv``.
        map_fn: the bank's own pool for encryption and decryption.

    Returns:
        :class:`GuestBinningView`.

    Raises:
        BinsTooSmall: the layout has a bin under the minimum or sizes that do not add up.
    """
    labels = _labels01(y)
    if params.share_bank_iv and own_iv is None:
        raise DataError("share_bank_iv needs the bank's own IV (own_iv)")
    pk, sk = keypair
    n = len(labels)
    _check_budget(pk, n, params)
    minimum = params.min_bin_rows if min_bin_rows is None else min_bin_rows
    engine = PaillierSecret(sk, rng, map_fn=map_fn, blind_bits=params.mask_bits)
    fp = pk.fingerprint()
    yield Send(BinningStep.SETUP, LabelKey(pk, n))
    layout = yield from recv_typed(BinningStep.LAYOUT, BinLayout)
    ok = check_layout(layout.bin_rows, n, minimum)
    yield Send(BinningStep.DECISION, LayoutDecision(ok))
    if not ok:
        raise BinsTooSmall(f"the platform's bins {[list(f) for f in layout.bin_rows]} break the minimum of {minimum} rows "
                           f"or do not add up to {n} rows", public=f"bin layout refused: a bin under {minimum} rows")
    total = n_batches(n, params.batch_size)
    for k, lo, hi in batches(n, params.batch_size):
        yield Send(BinningStep.LABELS, EncryptedLabels(fp, tuple(engine.encrypt_many(labels[lo:hi]))))
        yield Progress("binning.labels", k + 1, total)
    sums = yield from recv_typed(BinningStep.MASKED_SUMS, MaskedBinSums)
    if sums.key_fingerprint != fp:
        raise KeyMismatchError("masked bin sums under a different key")
    n_bins = sum(len(f) for f in layout.bin_rows)
    if len(sums.values) != n_bins:
        raise ProtocolError(f"{len(sums.values)} masked sums for {n_bins} bins")
    yield Send(BinningStep.REPLY, MaskedCounts(tuple(int(v) for v in engine.decrypt_many(sums.values))))
    host_iv = None
    if params.share_iv:
        host_iv = dict((yield from recv_typed(BinningStep.IV, SharedIv)).iv)
    if params.share_bank_iv and own_iv is not None:
        yield Send(BinningStep.BANK_IV, SharedIv(tuple((name, float(v)) for name, v in own_iv.items())))
    return GuestBinningView(layout.bin_rows, host_iv)


def host_program(x: np.ndarray, bins: Sequence[FeatureBins], params: SecureBinningParams, rng: Any, *,
                 map_fn: MapFn | None = None) -> RoleProgram:
    """The platform: sum the bank's encrypted labels per bin of its own features, masked; unmask the reply.

    Args:
        x: its features of the aligned rows (one column per entry of ``bins``), in the shared row order.
        bins: its own bins (each bin at least ``params.min_bin_rows`` rows on ``x``; see :func:`.bins.merge_small`).
        params: the agreed parameters.
        rng: randomness for the masks and the blinding encryptions.
        map_fn: the platform's own pool for the blinding encryptions.

    Returns:
        :class:`HostBinningResult`.

    Raises:
        DataError: a value in no bin, or a bin under ``params.min_bin_rows`` (checked before anything is sent).
        BinsTooSmall: the bank refused the layout.
    """
    x = np.asarray(x, dtype=float)
    if x.ndim != 2 or x.shape[1] != len(bins):
        raise DataError(f"{x.shape[1] if x.ndim == 2 else '?'} feature columns for {len(bins)} binnings")
    assigned = [b.assign(x[:, j]) for j, b in enumerate(bins)]
    for b, idx in zip(bins, assigned):
        if (idx < 0).any():
            raise DataError(f"feature {b.name}: missing values but no bin for them")
    rows = [np.bincount(idx, minlength=b.n_bins).astype(np.int64) for b, idx in zip(bins, assigned)]
    for b, r in zip(bins, rows):
        if r.size == 0 or r.min() < params.min_bin_rows:
            raise DataError(f"feature {b.name}: a bin under {params.min_bin_rows} rows; merge it first (merge_small)")
    setup = yield from recv_typed(BinningStep.SETUP, LabelKey)
    n = len(x)
    if setup.n_rows != n:
        raise DataError(f"the bank has {setup.n_rows} aligned rows, the platform {n}")
    pk = setup.public_key
    _check_budget(pk, n, params)
    yield Send(BinningStep.LAYOUT, BinLayout(tuple(tuple(int(v) for v in r) for r in rows)))
    decision = yield from recv_typed(BinningStep.DECISION, LayoutDecision)
    if not decision.accepted:
        raise BinsTooSmall("the bank refused the bin layout", public="bin layout refused by the bank")
    fp = pk.fingerprint()
    nsq = pk.nsquare
    accs: list[list[Any]] = [[1] * b.n_bins for b in bins]
    total = n_batches(n, params.batch_size)
    for k, lo, hi in batches(n, params.batch_size):
        got = yield from recv_typed(BinningStep.LABELS, EncryptedLabels)
        if got.key_fingerprint != fp:
            raise KeyMismatchError("labels under a different key than the bank announced")
        if len(got.values) != hi - lo:
            raise ProtocolError(f"label batch {k} has {len(got.values)} values, expected {hi - lo}")
        for acc, idx in zip(accs, assigned):
            for i, c in zip(idx[lo:hi].tolist(), got.values):
                acc[i] = acc[i] * c % nsq
        yield Progress("binning.labels", k + 1, total)
    public = PaillierPublic(pk, rng, map_fn=map_fn, blind_bits=params.mask_bits)
    width = _mask_bits(n, params)
    flat = [c for acc in accs for c in acc]
    masks = [rng.getrandbits(width) for _ in flat]
    blinds = public.encrypt_blinding_many(masks)
    yield Send(BinningStep.MASKED_SUMS, MaskedBinSums(fp, tuple(public.add(c, b) for c, b in zip(flat, blinds))))
    reply = yield from recv_typed(BinningStep.REPLY, MaskedCounts)
    if len(reply.values) != len(flat):
        raise ProtocolError(f"{len(reply.values)} masked counts for {len(flat)} bins")
    bads_flat = [int(v) - m for v, m in zip(reply.values, masks)]
    counts: list[BinCounts] = []
    pos = 0
    for b, r in zip(bins, rows):
        bads = np.asarray(bads_flat[pos:pos + b.n_bins], dtype=np.int64)
        pos += b.n_bins
        if (bads < 0).any() or (bads > r).any():
            raise ProtocolError("a decrypted bin count is out of range")
        counts.append(BinCounts(r, bads))
    tables = tuple(finish_bins(b, c, params) for b, c in zip(bins, counts))
    if params.share_iv:
        yield Send(BinningStep.IV, SharedIv(tuple((t.name, t.iv) for t in tables)))
    bank_iv = dict((yield from recv_typed(BinningStep.BANK_IV, SharedIv)).iv) if params.share_bank_iv else None
    return HostBinningResult(tuple(bins), tuple(counts), tables, bank_iv)

