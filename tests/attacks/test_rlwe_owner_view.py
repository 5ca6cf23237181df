"""Red team (``he_scheme: ckks``): the key owner reads the peer's plaintext out of a masked RLWE product.

In every RLWE exchange the *owner* (here the platform, the host) encrypts its
share under its own secret key, the *peer* (the bank, the guest) multiplies it
by a plaintext matrix holding its features -- ``X_B`` in the conversion, ``X_B^T``
in the gradient -- masks it and sends it back, and the owner decrypts
(:mod:`fedcredit.protocols.rlwe.scheme`). The owner knows more than the decrypted values:
its secret ``s``, the ``a`` of each of its own ciphertexts (expanded from the seed
it sent), and the noise ``e`` of each (the part below ``Δ`` of its own
ciphertext, decrypted). Two parts of the peer's mask stand between that and the
peer's features, and each is removed here in a naive peer (a subclass of the
shipped engine, used by the guest only, inside this test):

* **Rerandomization** (the fresh ``Enc_pk(0)``). Without it ``c1 = a · P`` for the
  owner's own ``a`` (one inner block): ``P = c1 / a`` in NTT form, and its
  coefficients are the guest's features, exactly. Against the shipped engine
  ``c1 = a P + a_pk u + e1`` and the same division gives residues uniform mod
  ``Q``: no exact match, correlation at chance.
* **Noise flooding** (``F``). Without it the part of a target coefficient below
  ``Δ`` is ``(e · P)[t] + (fresh noise of a few hundred)``, linear in the
  guest's features with coefficients the owner knows. One batch gives ``J``
  equations per row (conversion) and per column (gradient), fewer than its
  unknowns, but over a few epochs (every row in a batch of each, :func:`_epochs`)
  the system is overdetermined, and least squares gives every training feature
  of the guest to about ``2^-13``. Against the shipped engine ``F`` (uniform,
  ``2^flood_bits``) makes the same solution unrelated to the features.

The attacks read the host's view as recorded (:class:`.views.Observer`): what it
sent and received, and its own secret key (``_party.eng`` in its memory).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sps
from scipy.sparse.linalg import lsqr

from fedcredit.protocols.core import Role, run_local
from fedcredit.protocols.hetero_lr import epoch_batches
from fedcredit.protocols.hetero_lr import two_party as tp
from fedcredit.protocols.hetero_lr.share_engine import RlweShareEngine, plan_rlwe_for
from fedcredit.protocols.hetero_lr.two_party_messages import MaskedConversion, MaskedGradientShare
from fedcredit.protocols.rlwe import scheme as rl
from fedcredit.protocols.rlwe.ring import CBD_ETA, RingContext

from .common import PARAMS, Breast, chance_correlation_bound, party_keypair, pearson
from .views import Observer, RlweKey, centered_mod, rlwe_decrypt

G, H = Role.GUEST, Role.HOST
FX = PARAMS.feature_frac_bits
CKKS = replace(PARAMS, he_scheme="ckks")
ALPHA = 1e-3


# --------------------------------------------------------------------------- the naive peer (test-only)


def naive_mask(pk: rl.RlwePublicKey, acc: rl.ProductAccumulator, rng: Any, *, rerandomize: bool, flood: bool
               ) -> tuple[rl.RlweCiphertexts, list[int]]:
    """:func:`fedcredit.protocols.rlwe.scheme.mask`, with the fresh ``Enc_pk(0)`` and/or the flood ``F`` left out."""
    params = pk.params
    ctx = rl.context(params)
    layout = acc.layout
    a = ctx.uniform_from_seed(pk.seed)
    tgt = layout.targets()
    delta, beta, ring = 1 << params.delta_bits, params.limb_bits, (1 << params.ring_bits) - 1
    own: list[int] = []
    c0s, c1s = [], []
    for rb in range(layout.row_blocks):
        rows_here = min(layout.row_block, layout.rows - rb * layout.row_block)
        pos = tgt[:rows_here].ravel()
        masks = [int(rng.getrandbits(params.mask_bits)) for _ in range(pos.size)]
        floods = [int(rng.getrandbits(params.flood_bits + 1)) - (1 << params.flood_bits) if flood else 0
                  for _ in range(pos.size)]
        m = ctx.uniform(rng)  # still uniform off the targets, and Δ R (+ F) on them
        vals = np.array([delta * r + f for r, f in zip(masks, floods)], dtype=object)
        for p, q in enumerate(ctx.primes):
            m[p, pos] = (vals % q).astype(np.uint64)
        body = ctx.ntt(ctx.add(m, ctx.from_small(ctx.cbd(rng))))
        if rerandomize:
            u = ctx.ntt(ctx.from_small(ctx.ternary(rng)))
            e1 = ctx.ntt(ctx.from_small(ctx.cbd(rng)))
            c0s.append(ctx.add(acc.c0[rb], ctx.add(ctx.mul(pk.b, u), body)))
            c1s.append(ctx.add(acc.c1[rb], ctx.add(ctx.mul(a, u), e1)))
        else:  # c1 = Σ c1_operand · P, as multiplied
            c0s.append(ctx.add(acc.c0[rb], body))
            c1s.append(acc.c1[rb].copy())
        R = np.array(masks, dtype=object).reshape(rows_here, layout.limbs)
        own += [(-sum(int(R[r, j]) << (beta * j) for j in range(layout.limbs))) & ring for r in range(rows_here)]
    # as the shipped mask sends it: c0 at the targets only, coefficient order
    sparse = np.stack([ctx.intt(c0)[:, tgt.ravel()] for c0 in c0s])
    return rl.RlweCiphertexts(pk.fingerprint(), params.degree, params.n_primes, sparse, (), np.stack(c1s)), own


class NaiveRlweEngine(RlweShareEngine):
    """The shipped engine with :func:`naive_mask` in place of :func:`fedcredit.protocols.rlwe.scheme.mask` in its own calls.

    (The swap lasts for one call of this engine, in this single-threaded in-memory run; the other party's
    engine, and every other step, run the shipped code.)"""

    def __init__(self, *args: Any, rerandomize: bool, flood: bool, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.flags = {"rerandomize": rerandomize, "flood": flood}

    def _naive(self, method: Any, *args: Any) -> Any:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(rl, "mask", lambda pk, acc, rng: naive_mask(pk, acc, rng, **self.flags))
            return method(*args)

    def convert(self, msg, xq):
        return self._naive(super().convert, msg, xq)

    def masked_gradient(self, msg, xq):
        return self._naive(super().masked_gradient, msg, xq)

    def loss_mask(self, acc):
        return self._naive(super().loss_mask, acc)


@dataclass
class Run:
    out: dict[Role, Any]
    host: Observer
    key: RlweKey  # the host's secret key and the layouts it opens with
    params: Any
    label: str


def _run(d: Breast, params: Any, label: str, **naive: bool) -> Run:
    """A real two-party job; with ``naive`` flags the guest's engine is :class:`NaiveRlweEngine`."""
    kg, kh = party_keypair(params, d.n_train, 601), party_keypair(params, d.n_train, 602)
    host = Observer()
    real = tp.make_share_engine

    def make(p, rng, *, keypair=None, map_fn=None, **kw):
        if naive and keypair is kg:
            return NaiveRlweEngine(p, rng, keypair=keypair, **kw, **naive)
        return real(p, rng, keypair=keypair, map_fn=map_fn, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tp, "make_share_engine", make)
        out = run_local({
            G: tp.guest_program(d.xg_tr, d.y_tr, d.xg_te, d.y_te, params, random.Random(1), keypair=kg),
            H: host.wrap(tp.host_program(d.xh_tr, d.xh_te, params, random.Random(2), keypair=kh)),
        })
    eng = host.snapshots[0]["_party.eng"]
    assert eng.sk is kh
    return Run(out, host, RlweKey.of_engine(eng), params, label)


def _epochs(d: Breast) -> int:
    """Epochs for the noise attack: each gives the owner ``J`` equations per (row, output) of its conversions and
    gradients; enough that the system over all of them is 1.5 times overdetermined (2 at the least)."""
    batches = epoch_batches(d.n_train, CKKS.batch_size_for(d.n_train), CKKS.seed, 0)
    limbs = plan_rlwe_for(CKKS, n_train=d.n_train, max_rows=max(map(len, batches)), n_batches=len(batches)).limbs
    m = d.xg_tr.shape[1] + 1  # the guest's columns, the intercept last
    per_epoch = limbs * (d.n_train + len(batches) * m)
    return max(2, -(-3 * d.n_train * m // (2 * per_epoch)))


@pytest.fixture(scope="module")
def shipped(breast: Breast) -> Run:
    return _run(breast, replace(CKKS, max_epochs=_epochs(breast)), "shipped")


@pytest.fixture(scope="module")
def no_rerandomization(breast: Breast) -> Run:
    return _run(breast, CKKS, "naive: no Enc_pk(0)", rerandomize=False, flood=True)


@pytest.fixture(scope="module")
def no_flood(breast: Breast) -> Run:
    return _run(breast, replace(CKKS, max_epochs=_epochs(breast)), "naive: no flood", rerandomize=True, flood=False)


def _guest_xq(d: Breast) -> np.ndarray:
    """The guest's plaintext matrix as its engine multiplies it: features at 2^FX, the intercept column last."""
    return np.hstack([np.rint(d.xg_tr * 2**FX), np.full((d.n_train, 1), 2**FX)]).astype(np.int64)


def _batches(d: Breast, run: Run) -> list[tuple[np.ndarray, dict[str, Any], dict[str, Any]]]:
    """(rows, sent payloads by step, received payloads by step) for every training batch of the run."""
    out = []
    for epoch in range(run.out[G].epochs):
        for rows in epoch_batches(d.n_train, run.params.batch_size_for(d.n_train), run.params.seed, epoch):
            window = run.host.recorder.batch_window(len(out))
            sent = {e.wire: e.payload for e in window if e.direction == "sent"}
            recv = {e.wire: e.payload for e in window if e.direction == "received"}
            out.append((rows, sent, recv))
    assert len(out) == len(run.host.snapshots)
    return out


def _placement(layout: rl.Layout, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where ``A[r, k]`` (``rows x cols``) is in the peer's plaintext polynomials: row block, inner block, and
    coefficient ``(r mod r_b) n_b J + n_b - 1 - (k mod n_b)`` (:func:`fedcredit.protocols.rlwe.scheme.multiply`)."""
    nb, rbk, J = layout.inner_block, layout.row_block, layout.limbs
    r, k = np.arange(rows)[:, None], np.arange(cols)[None, :]
    shape = (rows, cols)
    return (np.broadcast_to(r // rbk, shape), np.broadcast_to(k // nb, shape),
            np.broadcast_to((r % rbk) * nb * J + nb - 1 - (k % nb), shape))


def _exchanges(d: Breast, run: Run):
    """Every product the guest computed for the host, with what the host knows of it: per batch and exchange,
    (which exchange, the host's own operand, the masked reply, the layout, for each entry of the guest's matrix
    its training-set index in ``_guest_xq(d).ravel()`` and its placement, and the product's rows).
    Conversion: ``A = X_B``; gradient: ``A = X_B^T``."""
    key = run.key
    n_cols = d.xg_tr.shape[1] + 1
    for rows, sent, recv in _batches(d, run):
        n = len(rows)
        index = rows[:, None] * n_cols + np.arange(n_cols)[None, :]  # X_B[r, k] of the training set
        conv = key.layouts[MaskedConversion]
        yield "conversion", sent["lr2.shares"].values, recv["lr2.conversion"].values, conv, index, \
            _placement(conv, n, n_cols), n
        grad = key.layouts[MaskedGradientShare]
        yield "gradient", sent["lr2.residual"].values, recv["lr2.gradient"].values, grad, index.T, \
            _placement(grad, n_cols, n), n_cols


# --------------------------------------------------------------------------- (a) rerandomization


def _ntt_inverse(ctx: RingContext, a: np.ndarray) -> np.ndarray:
    """``a^(q-2)`` slot by slot (Fermat), in NTT form: the inverse of ``a`` where no slot is zero."""
    assert np.all(a != 0), "a slot of a is zero: a is not invertible (probability ~ N P / q)"
    exps = [q - 2 for q in ctx.primes]
    result = np.ones_like(a)
    base = a.copy()
    for bit in range(max(exps).bit_length()):
        take = np.array([(e >> bit) & 1 for e in exps], dtype=bool)[:, None]
        result = np.where(take, ctx.mul(result, base), result)
        base = ctx.mul(base, base)
    return result


def _divide_out(d: Breast, run: Run) -> tuple[np.ndarray, np.ndarray]:
    """The owner's computation: ``P = c1 / a`` for every conversion it received (``a`` of its own operand,
    from the seed it sent), read where the guest's matrix would be. Returns (what it reads, the guest's true
    plaintext), entry by entry over every batch."""
    ctx = rl.context(run.key.params)
    xq = _guest_xq(d).ravel()
    got, want = [], []
    for kind, mine, reply, layout, index, (rb, kb, pos), _ in _exchanges(d, run):
        if kind != "conversion":
            continue
        assert layout.inner_blocks == 1, "the division reads one operand per product: one inner block"
        a_inv = _ntt_inverse(ctx, ctx.uniform_from_seed(mine.seeds[0]))
        for b in range(len(reply)):
            sel = rb == b
            poly = ctx.intt(ctx.mul(reply.c1[b], a_inv))
            got.append(np.array(ctx.crt(poly, pos[sel]), dtype=object))
            want.append(xq[index[sel]].astype(object))
    return np.concatenate(got), np.concatenate(want)


def test_naive_peer_without_rerandomization_gives_the_owner_its_features(breast: Breast, no_rerandomization: Run) -> None:
    got, want = _divide_out(breast, no_rerandomization)
    exact = int(np.sum(got == want))
    print(f"\n[{no_rerandomization.label}] host divides c1 by its own a: {exact} of {len(want)} feature values of "
          f"the guest exactly (every training row, intercept column included)")
    assert len(want) == _guest_xq(breast).size
    assert exact == len(want)


def test_shipped_rerandomization_leaves_c1_unrelated_to_the_features(breast: Breast, shipped: Run) -> None:
    got, want = _divide_out(breast, shipped)
    exact = int(np.sum(got == want))
    q = rl.context(shipped.key.params).modulus
    r = pearson(np.array([float(v) / q for v in got]), np.array([float(v) for v in want]))
    bound = chance_correlation_bound(len(want), alpha=ALPHA)
    print(f"\n[shipped] same division: {exact} of {len(want)} exact (chance: {len(want)}/Q ~ 0); "
          f"correlation with the features {r:+.4f} (chance bound {bound:.4f})")
    assert exact == 0
    assert abs(r) <= bound


# --------------------------------------------------------------------------- (b) noise flooding


def _own_noise(key: RlweKey, ct: rl.RlweCiphertexts, index: int) -> np.ndarray:
    """The noise ``e`` of the owner's own (seeded) encryption: its decryption's part below ``Δ``."""
    e = np.array([centered_mod(x, key.params.delta_bits) for x in rlwe_decrypt(key.sk, ct, index)], dtype=np.int64)
    assert np.abs(e).max() <= CBD_ETA  # the owner knows e exactly
    return e


def _noise_coefficients(e: np.ndarray, targets: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """The coefficient of each ``P`` entry at ``positions`` in ``(e · P)[t]`` for each target (``x^N = -1``)."""
    n = len(e)
    diff = targets[:, None] - positions[None, :]
    return np.where(diff >= 0, e[diff % n], -e[diff % n]).astype(float)


def _solve_features(d: Breast, run: Run) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """The owner's least-squares solution for the guest's plaintext from the parts below Δ of the target
    coefficients: ``y_t = Σ_kb (e_kb · P_kb)[t] (+ F_t) + fresh noise``, with every ``e_kb`` its own. Returns
    (solution, truth, and per message the log2 of the largest |part below Δ| at its targets)."""
    key = run.key
    db, J = key.params.delta_bits, key.params.limbs
    xq = _guest_xq(d)
    data, ri, ci, rhs, sizes = [], [], [], [], []
    row0 = 0
    for _, mine, reply, layout, index, (rb, kb, pos), out_rows in _exchanges(d, run):
        noise = [_own_noise(key, mine, k) for k in range(len(mine))]
        tgt = layout.targets()
        for b in range(len(reply)):
            here = min(layout.row_block, out_rows - b * layout.row_block)  # rows past the batch hold no unknown
            t = tgt[:here].ravel()
            y = np.array([float(centered_mod(x, db)) for x in rlwe_decrypt(key.sk, reply, b, t)])
            sizes.append(float(np.log2(np.abs(y).max())))
            for k in range(len(mine)):
                sel = (rb == b) & (kb == k)
                m = _noise_coefficients(noise[k], t, pos[sel])
                rr, cc = np.nonzero(np.ones_like(m, dtype=bool))
                data.append(m[rr, cc])
                ri.append(rr + row0)
                ci.append(index[sel][cc])
            rhs.append(y)
            row0 += here * J
    a = sps.csr_matrix((np.concatenate(data), (np.concatenate(ri), np.concatenate(ci))), shape=(row0, xq.size))
    assert a.shape[0] >= 1.4 * a.shape[1]  # overdetermined (see _epochs)
    sol = lsqr(a, np.concatenate(rhs), atol=1e-14, btol=1e-14, iter_lim=2000)[0]
    return sol, xq.ravel().astype(float), sizes


def test_naive_peer_without_flooding_gives_the_owner_its_features(breast: Breast, no_flood: Run) -> None:
    sol, want, sizes = _solve_features(breast, no_flood)
    r = pearson(sol, want)
    err = np.abs(sol - want) / 2**FX  # in standardized units
    print(f"\n[{no_flood.label}] parts below Δ at most 2^{max(sizes):.1f}; least squares over {no_flood.out[G].epochs} "
          f"epochs: correlation {r:.9f} with the guest's {len(want)} training feature values; error median "
          f"{np.median(err):.1e}, max {err.max():.1e} (features are standardized, quantized at 2^-{FX})")
    assert max(sizes) < 40  # e·P plus fresh noise: nothing hides it
    assert r > 0.99999
    assert np.median(err) < 2.0**-11 and err.max() < 2.0**-7


def test_shipped_flood_leaves_the_noise_unrelated_to_the_features(breast: Breast, shipped: Run) -> None:
    sol, want, sizes = _solve_features(breast, shipped)
    r = pearson(sol, want)
    bound = chance_correlation_bound(len(want), alpha=ALPHA)
    print(f"\n[shipped] parts below Δ reach 2^{min(sizes):.1f}..2^{max(sizes):.1f} (flood 2^{shipped.key.params.flood_bits}); "
          f"the same least squares: correlation {r:+.4f} with the features (chance bound {bound:.4f})")
    assert min(sizes) > shipped.key.params.flood_bits - 4  # the flood is there in every message
    assert abs(r) <= bound
