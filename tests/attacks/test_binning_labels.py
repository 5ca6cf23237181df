"""Red team on the secure per-bin label counts (#15): what the platform learns of the labels, and the bank of the bins.

The platform (host) must learn the bads and goods of its own bins and nothing
per row; the bank (guest) must learn the platform's bin sizes and nothing of
the per-bin counts or of which rows are in which bin.

* **Permuted labels.** Two runs with the same seeds and keys, one with the
  true labels and one with them permuted *within the cells of the platform's
  bins* (so every bin keeps its counts): everything the platform can read
  (every non-ciphertext payload, value for value) and the shape of every
  ciphertext payload is the same. The same comparison flags a naive platform
  whose bins are five rows wide and a bank that accepts them.
* **Label readers.** An attacker reads per-row labels off the platform's view:
  off each label ciphertext (is it ``1 + y·n``, its parity, its Jacobi symbol)
  and off the counts of bins of one row. Exact against a bank that encrypts
  without randomness, or that accepts one-row bins; at chance against the
  shipped bank, which refuses bins under its minimum before it encrypts a label.
* **The bank's view.** It reads counts off what it decrypts, and confirms
  which rows a bin holds from the randomness of the masked sum (it knows the
  randomness of its own label ciphertexts). Exact against a platform that adds
  no mask, and membership confirmed against one that masks without a blinding
  encryption; nothing against the shipped platform.
"""

from __future__ import annotations

import random
from typing import Any

import gmpy2
import numpy as np
import pytest

from fedcredit.protocols.binning import (BinsTooSmall, EncryptedLabels, FeatureBins, MaskedBinSums, MaskedCounts, SecureBinningParams,
                                         count_bins, fit_features, guest_program, host_program, quantile_bins)
from fedcredit.protocols.binning import protocol as binning_protocol
from fedcredit.protocols.core import Ciphertext, Role, run_local, tap
from fedcredit.protocols.hetero_lr.he import PaillierPublic
from helpers import paillier_keypair

from .common import Recorder, accuracy_up_to_flip, chance_accuracy_bound, chance_correlation_bound, majority_rate, pearson

G, H = Role.GUEST, Role.HOST
ROWS = 2000
PARAMS = SecureBinningParams(min_bin_rows=50)


class ZeroRandom:
    """A deliberately broken randomness source: every draw is 0 (no masks, no blinding, no obfuscators)."""

    def getrandbits(self, k: int) -> int:
        return 0


@pytest.fixture(scope="module")
def credit() -> tuple[np.ndarray, np.ndarray]:
    from test_binning import default_credit

    _, _, xh, _, y = default_credit()
    rows = np.random.default_rng(11).choice(len(y), ROWS, replace=False)
    return xh[rows], y[rows]


@pytest.fixture(scope="module")
def key() -> tuple:
    return paillier_keypair(1024, 91)


def _run(y: np.ndarray, x: np.ndarray, bins: list[FeatureBins], key: tuple, *, guest_rng: Any = None, host_rng: Any = None,
         bank_min: int | None = None, host_params: SecureBinningParams = PARAMS) -> tuple[dict[Role, Any], Recorder, Recorder]:
    hrec, grec = Recorder(), Recorder()
    out = run_local({
        G: tap(guest_program(y, key, PARAMS, guest_rng or random.Random(1), min_bin_rows=bank_min), grec.on_action, grec.on_reply),
        H: tap(host_program(x, bins, host_params, host_rng or random.Random(2)), hrec.on_action, hrec.on_reply),
    })
    return out, hrec, grec


def readable_view(rec: Recorder) -> list[tuple[Any, ...]]:
    """Everything the platform received: step, type, sender, and the values of whatever is not a ciphertext
    (ciphertext payloads: their count of values, i.e. their encoded size at a fixed key size)."""
    out: list[tuple[Any, ...]] = []
    for e in rec.received():
        p = e.payload
        content: Any = len(p.values) if isinstance(p, Ciphertext) else repr(p)
        out.append((e.wire, type(p).__name__, e.peer, content))
    return out


def cell_permutation(y: np.ndarray, cells: np.ndarray, seed: int) -> np.ndarray:
    """``y`` permuted within each cell (rows with the same bin in every feature): every bin keeps its counts."""
    rng = np.random.default_rng(seed)
    out = y.copy()
    for c in np.unique(cells):
        idx = np.flatnonzero(cells == c)
        out[idx] = y[rng.permutation(idx)]
    return out


# --------------------------------------------------------------------------- the platform's view


def test_platform_view_is_identical_under_count_preserving_permutation(credit: tuple, key: tuple) -> None:
    x, y = credit
    x = x[:, [5, 6]]  # two features, four bins each: the cells are large, so the permutation moves many labels
    bins = fit_features(x, ["f5", "f6"], n_bins=4, min_rows=50)
    cells = bins[0].assign(x[:, 0]) * 16 + bins[1].assign(x[:, 1])
    y2 = cell_permutation(y, cells, 3)
    assert (y2 != y).sum() > 200
    for j, b in enumerate(bins):
        assert count_bins(b, x[:, j], y).bads.tolist() == count_bins(b, x[:, j], y2).bads.tolist()
    (out_a, ha, _), (out_b, hb, _) = _run(y, x, bins, key), _run(y2, x, bins, key)
    a, b = readable_view(ha), readable_view(hb)
    print(f"\n[shipped] platform received {len(a)} messages; readable views equal: {a == b}")
    assert {w for w, *_ in a} == {"bin.setup", "bin.decision", "bin.labels", "bin.reply"}
    assert a == b
    assert [t.woe for t in out_a[H].tables] == [t.woe for t in out_b[H].tables]

    # naive: the platform's bins are five rows wide (row order), and the bank accepts them
    order = np.arange(ROWS, dtype=float).reshape(-1, 1)
    tiny = [quantile_bins(order[:, 0], ROWS // 5, "row")]
    naive = SecureBinningParams(min_bin_rows=1)
    _, na, _ = _run(y, order, tiny, key, bank_min=1, host_params=naive)
    _, nb, _ = _run(y2, order, tiny, key, bank_min=1, host_params=naive)
    diff = [(p, q) for p, q in zip(readable_view(na), readable_view(nb)) if p != q]
    print(f"[naive 5-row bins] differing messages: {[p[0] for p, _ in diff]}")
    assert [p[0] for p, _ in diff] == ["bin.reply"]


def read_labels_from_ciphertexts(rec: Recorder, n: int) -> dict[str, np.ndarray]:
    """Per-row label guesses from every label ciphertext the platform received, one guess vector per statistic."""
    cts = [c for e in rec.received() if isinstance(e.payload, EncryptedLabels) for c in e.payload.values]
    assert len(cts) == ROWS
    nn = gmpy2.mpz(n)
    return {
        "is 1 + n (no randomness)": np.array([int(c) == 1 + n for c in cts]),
        "c >= n": np.array([c >= nn for c in cts]),
        "parity": np.array([int(c) & 1 for c in cts]),
        "jacobi(c mod n)": np.array([gmpy2.jacobi(gmpy2.mpz(c) % nn, nn) == 1 for c in cts]),
        "high bit": np.array([int(c) >> (2 * n.bit_length() - 2) & 1 for c in cts]),
    }


def test_platform_reads_no_label_off_the_ciphertexts(credit: tuple, key: tuple) -> None:
    x, y = credit
    bins = fit_features(x[:, :2], ["f0", "f1"], n_bins=4, min_rows=50)
    n = int(key[0].n)
    _, shipped, _ = _run(y, x[:, :2], bins, key)
    _, naive, _ = _run(y, x[:, :2], bins, key, guest_rng=ZeroRandom())  # the bank encrypts with no randomness
    bound = chance_accuracy_bound(ROWS, majority_rate(y), tests=5)
    for name, guess in read_labels_from_ciphertexts(shipped, n).items():
        acc = accuracy_up_to_flip(guess, y)
        print(f"\n[shipped] {name}: accuracy {acc:.3f} (chance band {bound:.3f})")
        assert acc <= bound, name
    naive_acc = accuracy_up_to_flip(read_labels_from_ciphertexts(naive, n)["is 1 + n (no randomness)"], y)
    print(f"[naive, no randomness] accuracy {naive_acc:.3f}")
    assert naive_acc == 1.0


def test_one_row_bins_are_refused_before_any_label_leaves(credit: tuple, key: tuple) -> None:
    _, y = credit
    order = np.arange(ROWS, dtype=float).reshape(-1, 1)
    singletons = [quantile_bins(order[:, 0], ROWS, "row")]
    naive = SecureBinningParams(min_bin_rows=1)
    out, _, _ = _run(y, order, singletons, key, bank_min=1, host_params=naive)  # a bank without a minimum
    counts = out[H].counts[0]
    assert counts.rows.tolist() == [1] * ROWS
    stolen = counts.bads[singletons[0].assign(order[:, 0])]
    print(f"\n[naive bank, no minimum] one-row bins: labels read {np.mean(stolen == y):.3f}")
    assert (stolen == y).all()
    hrec = Recorder()
    with pytest.raises(BinsTooSmall):
        run_local({G: guest_program(y, key, PARAMS, random.Random(1)),
                   H: tap(host_program(order, singletons, naive, random.Random(2)), hrec.on_action, hrec.on_reply)})
    assert not any(isinstance(e.payload, EncryptedLabels) for e in hrec.received())


# --------------------------------------------------------------------------- the bank's view


def bank_attacks(grec: Recorder, hrec: Recorder, key: tuple, y: np.ndarray, x: np.ndarray, bins: list[FeatureBins],
                 truth: list[np.ndarray]) -> tuple[float, float, float]:
    """(share of bins whose count the bank reads exactly, |r| of what it decrypts with the counts, share of bins
    whose membership it confirms from the masked sum's randomness)."""
    pk, sk = key
    n, nsq = int(pk.n), int(pk.nsquare)
    sums = next(e.payload for e in grec.received() if isinstance(e.payload, MaskedBinSums)).values
    opened = next(e.payload for e in grec.sent() if isinstance(e.payload, MaskedCounts)).values
    cts = [int(c) for e in hrec.received() if isinstance(e.payload, EncryptedLabels) for c in e.payload.values]
    # the bank knows its own ciphertexts' randomness: r_i = c_i (1 - y_i n) mod n^2
    r = [c * (1 - int(yi) * n) % nsq for c, yi in zip(cts, y)]
    true_counts = np.concatenate(truth)
    exact = float(np.mean(np.asarray(opened, dtype=object) == true_counts))
    corr = abs(pearson(np.array([float(v % (1 << 52)) for v in opened]), true_counts))
    confirmed, k = 0, 0
    for j, b in enumerate(bins):
        idx = b.assign(x[:, j])
        for bin_k in range(b.n_bins):
            want = 1
            for i in np.flatnonzero(idx == bin_k):
                want = want * r[i] % nsq
            got = int(sums[k]) * (1 - int(opened[k]) * n) % nsq  # the masked sum's randomness
            confirmed += got == want
            k += 1
    return exact, corr, confirmed / k


class UnblindedPublic(PaillierPublic):
    """A deliberately naive platform engine: masks added as ``1 + m·n``, with no blinding randomness."""

    def encrypt_blinding_many(self, ms: Any) -> list[Any]:
        n, nsq = int(self.pk.n), int(self.pk.nsquare)
        return [(1 + int(m) * n) % nsq for m in ms]


def test_bank_reads_no_count_and_no_membership(credit: tuple, key: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = credit
    names = [f"f{j}" for j in range(x.shape[1])]
    bins = fit_features(x, names, n_bins=20, min_rows=50)
    truth = [count_bins(b, x[:, j], y).bads for j, b in enumerate(bins)]
    n_bins = sum(len(t) for t in truth)
    assert n_bins >= 60

    _, h, g = _run(y, x, bins, key)
    exact, corr, confirmed = bank_attacks(g, h, key, y, x, bins, truth)
    band = chance_correlation_bound(n_bins)
    print(f"\n[shipped] {n_bins} bins: counts read {exact:.2f}, |r| {corr:.3f} (band {band:.3f}), membership confirmed {confirmed:.2f}")
    assert exact == 0.0 and corr <= band and confirmed == 0.0

    _, h, g = _run(y, x, bins, key, host_rng=ZeroRandom())  # no masks (and no blinding)
    exact, _, confirmed = bank_attacks(g, h, key, y, x, bins, truth)
    print(f"[naive, no mask] counts read {exact:.2f}, membership confirmed {confirmed:.2f}")
    assert exact == 1.0 and confirmed == 1.0

    monkeypatch.setattr(binning_protocol, "PaillierPublic", UnblindedPublic)  # masks, but no blinding encryption
    _, h, g = _run(y, x, bins, key)
    exact, _, confirmed = bank_attacks(g, h, key, y, x, bins, truth)
    print(f"[naive, unblinded mask] counts read {exact:.2f}, membership confirmed {confirmed:.2f}")
    assert exact == 0.0 and confirmed == 1.0


def test_known_limit_nested_bins_of_a_malicious_platform(credit: tuple, key: tuple) -> None:
    """The stated limit of the minimum-size defence: it assumes a semi-honest platform.

    A platform that *chooses* two binnings whose bins differ in one row (each bin
    well over the minimum, so the bank accepts) reads that row's label from the
    difference of the two counts. This test pins the limit down (the attack
    works); the protocol's docstring and the README say so.
    """
    _, y = credit
    order = np.arange(ROWS, dtype=float)
    x = np.column_stack([order, order])
    target = 100
    nested = [FeatureBins("a", (target - 1 + 0.5,)), FeatureBins("b", (target + 0.5,))]  # rows 0..99 | 0..100
    out, _, _ = _run(y, x, nested, key)
    a, b = out[H].counts
    assert min(a.rows.min(), b.rows.min()) >= PARAMS.min_bin_rows  # the bank accepted both layouts
    assert int(b.bads[0] - a.bads[0]) == int(y[target])
