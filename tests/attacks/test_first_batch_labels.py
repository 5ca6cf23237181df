"""Red team: the platform (host) recovers the bank's first-batch labels by subset sum.

At zero weights the first batch's residual is ``d = -y/2`` exactly, so any party
that learns ``X_B^T d`` for its own features learns ``X_B^T y``: with real-valued
features that integer subset sum has one binary solution, and scipy's MILP finds
it in milliseconds (:mod:`.milp`).

* Coordinated mode (``protocol.py``), the naive baseline: the host unmasks its
  own gradient every batch, so the attack recovers the whole first batch; a
  coordinator colluding with the host decrypts ``[[d]]`` and reads every label.
* Two-party mode (``two_party.py``), shipped: the host holds its own secret key
  here (the test supplies it), decrypts everything it receives under it, and
  every first-batch quantity it holds or can combine is fed to the same attacks.
  The coordinator holds no key: host + coordinator see the host's view plus the
  size of each relayed (sealed) message. Every shipped test runs with both
  engines (``he_scheme``: ``paillier`` and ``ckks``, the RLWE one; for RLWE the
  host decrypts every masked product in full, :func:`.views.decrypted_vectors`).
  The epoch-pooled test leaves the MILP out for ``ckks`` (it would add a minute;
  the first-batch tests run it on the same kind of quantities).

Each shipped assertion is paired with a naive run in this file where the very
same attack code succeeds.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pytest

from fedcredit.protocols.core import Role, run_local
from fedcredit.protocols.hetero_lr import HeteroLRParams, epoch_batches
from fedcredit.protocols.hetero_lr import protocol as lr
from fedcredit.protocols.hetero_lr import two_party as tp
from fedcredit.protocols.paillier import FixedPoint, from_residue
from helpers import paillier_keypair

from .common import (DECRYPTED_ROWS, PARAMS, SCHEMES, Breast, accuracy_up_to_flip, chance_accuracy_bound, first_batch,
                     majority_rate, party_keypair)
from .milp import recover_labels
from .views import (Guess, Observer, label_guesses, leaky_guest, leaky_host, role_key, size_only_depends_on_layout,
                    view_quantities, wire_size)

G, H, C = Role.GUEST, Role.HOST, Role.COORDINATOR
FX = PARAMS.feature_frac_bits
#: The attacker tries scales c * 2^j for these c: 1 (gradients) and the learning rate (weights after one step).
SCALE_FACTORS = (1.0, PARAMS.learning_rate)


@dataclass
class Run:
    out: dict[Role, Any]
    host: Observer
    keys: dict[str, Any]  # coordinated: the coordinator's key pair; two-party: the host's secret key (role_key)
    params: HeteroLRParams = PARAMS


def _host_x(d: Breast, rows: np.ndarray) -> np.ndarray:
    """The host's features of the batch as its protocol uses them (fixed point, 2^-16)."""
    return np.rint(d.xh_tr[rows] * 2**FX) / 2**FX


def _report(label: str, guesses: list[Guess], y: np.ndarray) -> float:
    accs = sorted(((accuracy_up_to_flip(g.labels, y), g.quantity, g.method, g.detail) for g in guesses), reverse=True)
    print(f"\n[{label}] {len(guesses)} guesses; best: " + "; ".join(f"{a:.3f} {q} {m} {dt}".strip() for a, q, m, dt in accs[:3]))
    return accs[0][0] if accs else 0.0


@pytest.fixture(scope="module")
def coordinated(breast: Breast) -> Run:
    d = breast
    kc = paillier_keypair(1024, 101)  # the coordinator's key pair: the test keeps its secret key
    host = Observer()
    out = run_local({
        G: lr.guest_program(d.xg_tr, d.y_tr, d.xg_te, d.y_te, PARAMS, random.Random(1)),
        H: host.wrap(lr.host_program(d.xh_tr, d.xh_te, PARAMS, random.Random(2))),
        C: lr.coordinator_program(PARAMS, random.Random(3), keypair=kc),
    })
    return Run(out, host, {"coordinator": kc})


@pytest.fixture(scope="module", params=SCHEMES)
def two_party(request: pytest.FixtureRequest, breast: Breast) -> Run:
    d = breast
    params = replace(PARAMS, he_scheme=request.param)
    # the test holds exactly the host's secret key
    kg, kh = party_keypair(params, d.n_train, 201), party_keypair(params, d.n_train, 202)
    host = Observer()
    out = run_local({
        G: tp.guest_program(d.xg_tr, d.y_tr, d.xg_te, d.y_te, params, random.Random(1), keypair=kg),
        H: host.wrap(tp.host_program(d.xh_tr, d.xh_te, params, random.Random(2), keypair=kh)),
    })
    return Run(out, host, {"host": role_key(kh, host.snapshots[0])}, params)


def _chance_check(guesses: list[Guess], y: np.ndarray, base_rate_labels: np.ndarray) -> tuple[float, float, list]:
    """The shipped assertion's arithmetic: (best accuracy, chance bound, guesses above the bound).

    The bound is the 99.9 % binomial band of a guess independent of the labels
    around the majority rate, Bonferroni-corrected for the number of guesses.
    """
    bound = chance_accuracy_bound(len(y), majority_rate(base_rate_labels), tests=len(guesses))
    accs = [(accuracy_up_to_flip(g.labels, y), g.quantity, g.method) for g in guesses]
    best = max(a for a, _, _ in accs)
    return best, bound, [t for t in accs if t[0] > bound]


def _host_guesses(d: Breast, run: Run, secret_keys: list[Any], ring_bits: int | None, extra=()) -> tuple[list[Guess], list]:
    rows = first_batch(d.n_train)
    m = d.xh_tr.shape[1]
    qs = view_quantities(run.host.recorder.batch_window(0), run.host.snapshots[0], lengths={len(rows), m},
                         secret_keys=secret_keys, ring_bits=ring_bits, extra=extra)
    return label_guesses(_host_x(d, rows), qs, scale_factors=SCALE_FACTORS), qs


# --------------------------------------------------------------------------- host alone


def test_naive_coordinated_host_recovers_first_batch_labels(breast: Breast, coordinated: Run) -> None:
    d, run = breast, coordinated
    rows = first_batch(d.n_train)
    y = d.y_tr[rows]
    x = _host_x(d, rows)

    # What the host received in batch 0 (tap) minus the masks it drew itself: its gradient sum X^T d.
    window = run.host.recorder.batch_window(0)
    got = [e.payload for e in window if e.direction == "received" and e.wire == "lr.decrypted_masked_gradient"]
    assert len(got) == 1
    masks = run.host.snapshots[0]["host_program.masks"]
    target = FixedPoint(0).decode([v - r for v, r in zip(got[0].values, masks)], got[0].exponent)
    # ... which is the gradient the host program itself computed and applied.
    np.testing.assert_allclose(target / len(rows), run.host.snapshots[0]["host_program.grad"], rtol=0, atol=1e-12)

    labels = recover_labels(x, target, scale=-0.5, labels="pm1")
    acc = float(np.mean(labels == y))
    print(f"\n[naive host, direct MILP] first batch of {len(rows)} rows: {acc:.3f} of labels recovered")
    assert acc >= 0.95

    # The generic attack used on the shipped protocol below finds it too, from the same view,
    # and the shipped test's check flags it.
    guesses, _ = _host_guesses(d, run, [], None)
    assert _report("naive host, generic view attack", guesses, y) >= 0.95
    best, bound, above = _chance_check(guesses, y, d.y_tr)
    assert best > bound and above


def test_shipped_two_party_host_view_is_at_chance(breast: Breast, two_party: Run) -> None:
    d, run = breast, two_party
    rows = first_batch(d.n_train)
    y = d.y_tr[rows]
    guesses, qs = _host_guesses(d, run, [run.keys["host"]], PARAMS.ring_bits)
    scheme = run.params.he_scheme

    # Not vacuous: the host decrypted what it received under its key, and its own shares are in the view.
    names = {q.name for q in qs}
    assert any("lr2.conversion" in n and DECRYPTED_ROWS[scheme] in n for n in names), names
    assert {"mem:_party.g_own", "mem:_party.a", "mem:_party.d_own"} <= names, names
    if scheme == "ckks":  # every limb and its part below Δ (flood + noise) went to the attacks too
        assert any("lr2.conversion" in n and "[rlwe:noise0]" in n for n in names), names
    assert any(g.method == "milp" for g in guesses)
    # The view decrypts as the protocol does: the decrypted rows, mod 2^ℓ, are the host's share it opened.
    dec = next(q for q in qs if q.name.startswith("recv#") and q.name.endswith("lr2.conversion.values" + DECRYPTED_ROWS[scheme]))
    assert [v % 2**PARAMS.ring_bits for v in dec.ints] == list(run.host.snapshots[0]["_party.peer_part"])

    _report(f"shipped host, {scheme}", guesses, y)
    best, bound, above = _chance_check(guesses, y, d.y_tr)
    print(f"[shipped host, {scheme}] best {best:.3f}; chance bound (99.9%, Bonferroni over {len(guesses)}): {bound:.3f}")
    assert bound < 0.95  # the band excludes what the naive run achieves: the test can fail
    assert not above, above


# --------------------------------------------------------------------------- coordinator + platform


def test_naive_coordinator_and_host_read_every_label(breast: Breast, coordinated: Run) -> None:
    d, run = breast, coordinated
    pk, sk = run.keys["coordinator"]
    batches = epoch_batches(d.n_train, PARAMS.batch_size_for(d.n_train), PARAMS.seed, 0)
    rows = batches[0]
    resid = [e.payload for e in run.host.recorder.batch_window(0) if e.direction == "received" and e.wire == "lr.residuals"]
    assert len(resid) == 1
    v = resid[0].residuals
    dvals = FixedPoint(0).decode([from_residue(pk, sk.decrypt_raw(c)) for c in v.values], v.exponent)
    np.testing.assert_array_equal(dvals, -(2 * d.y_tr[rows] - 1) / 2)  # d = -y/2 exactly at zero weights
    acc = float(np.mean((dvals < 0).astype(int) == d.y_tr[rows]))
    print(f"\n[naive coordinator+host] first batch labels read from [[d]]: {acc:.3f}")
    assert acc == 1.0

    # The same generic attack as for the shipped coalition, with the coordinator's key in the coalition.
    guesses, _ = _host_guesses(d, run, [sk], None)
    assert _report("naive coordinator+host, generic view attack", guesses, d.y_tr[rows]) == 1.0
    best, bound, above = _chance_check(guesses, d.y_tr[rows], d.y_tr)
    assert best > bound and above


def test_shipped_coordinator_and_host_are_at_chance(breast: Breast, two_party: Run) -> None:
    d, run = breast, two_party
    batches = epoch_batches(d.n_train, PARAMS.batch_size_for(d.n_train), PARAMS.seed, 0)
    rows = batches[0]
    y = d.y_tr[rows]
    # The coordinator has no role program and no key in this mode: it relays sealed bytes.
    assert set(run.out) == {G, H}
    # Its view: the size of every message it relays to or from the host up to the end of the first batch.
    window = run.host.recorder.batch_window(0)
    sizes = [wire_size(e.payload) for e in window if e.direction in ("sent", "received")]
    assert len(sizes) == 10, sizes  # the setup, then four steps, each way
    # The union: the host's view (its key; the coordinator brings no key) and those sizes. The sizes go in
    # as one more vector; it is neither row- nor feature-sized, so what it could carry about the labels is
    # tested separately below (sizes as a function of the batch layout).
    guesses, qs = _host_guesses(d, run, [run.keys["host"]], PARAMS.ring_bits, extra=[("relay:sizes", sizes)])
    _report(f"shipped coordinator+host, {run.params.he_scheme}", guesses, y)
    best, bound, above = _chance_check(guesses, y, d.y_tr)
    print(f"[shipped coordinator+host, {run.params.he_scheme}] best {best:.3f}; chance bound {bound:.3f}")
    assert bound < 0.95
    assert not above, above

    # Sizes: a function of the public batch layout only (batches of equal rows, equal sizes), so they
    # cannot carry the labels; the leaky variant below shows the same check failing.
    problems = size_only_depends_on_layout(run.host.recorder, [len(b) for b in batches])
    print(f"[shipped coordinator+host, {run.params.he_scheme}] relayed sizes per batch vary with: {problems or 'nothing'}")
    assert not problems


@pytest.mark.parametrize("scheme", SCHEMES)
def test_naive_label_sized_message_is_caught_by_the_size_check(breast: Breast, scheme: str) -> None:
    """Paired with the size check above: a message sized by each batch's label count is flagged."""
    d = breast
    params = replace(PARAMS, he_scheme=scheme)
    batches = epoch_batches(d.n_train, PARAMS.batch_size_for(d.n_train), PARAMS.seed, 0)
    counts = [int(d.y_tr[b].sum()) for b in batches]
    assert len(set(counts[:-1])) > 1, counts  # precondition: equal-sized batches differ in label count
    host = Observer()
    run_local({
        G: leaky_guest(tp.guest_program(d.xg_tr, d.y_tr, d.xg_te, d.y_te, params, random.Random(1),
                                        keypair=party_keypair(params, d.n_train, 201)), d.y_tr, batches, hints=len(batches)),
        H: host.wrap(leaky_host(tp.host_program(d.xh_tr, d.xh_te, params, random.Random(2),
                                                keypair=party_keypair(params, d.n_train, 202)), hints=len(batches))),
    })
    problems = size_only_depends_on_layout(host.recorder, [len(b) for b in batches])
    print(f"\n[naive leaky size channel, {scheme}] positives per batch {counts}; flagged: {problems}")
    assert problems and all("leak.label_count_hint" in p for p in problems)
    # Flagged exactly where the label count differs from the first batch of the same size.
    full = [b for b in range(len(batches)) if len(batches[b]) == len(batches[0])]
    assert [int(p.split(":")[0].split()[1]) for p in problems] == [b for b in full if counts[b] != counts[0]]


# --------------------------------------------------------------------------- the whole first epoch, pooled


def _pooled_accuracies(d: Breast, run: Run, inject=None) -> tuple[dict, int]:
    """Every (quantity, method) guess the host can make in each batch of epoch 0, pooled over the epoch.

    ``inject(batch, rows)`` may add one more per-row quantity to the view (the naive check below).
    For ``ckks`` the MILP is left out (see the module docstring)."""
    batches = epoch_batches(d.n_train, PARAMS.batch_size_for(d.n_train), PARAMS.seed, 0)
    m = d.xh_tr.shape[1]
    pooled: dict[tuple[str, str], list[tuple[np.ndarray, np.ndarray]]] = {}
    for b, rows in enumerate(batches):
        extra = [inject(b, rows)] if inject is not None else []
        qs = view_quantities(run.host.recorder.batch_window(b), run.host.snapshots[b], lengths={len(rows), m},
                             secret_keys=[run.keys["host"]], ring_bits=PARAMS.ring_bits, extra=extra)
        milp = run.params.he_scheme == "paillier"
        for g in label_guesses(_host_x(d, rows), qs, scale_factors=SCALE_FACTORS, milp=milp):
            # the same quantity in every batch: a received one is named by its step, not its place in the transcript
            name = re.sub(r"recv#\d+:", "recv:", g.quantity)
            pooled.setdefault((name, g.method), []).append((np.asarray(g.labels), d.y_tr[rows]))
    full = {k: v for k, v in pooled.items() if len(v) == len(batches)}
    accs = {k: accuracy_up_to_flip(np.concatenate([g for g, _ in v]), np.concatenate([y for _, y in v])) for k, v in full.items()}
    return accs, sum(len(r) for r in batches)


def test_shipped_host_view_is_at_chance_over_the_whole_first_epoch(breast: Breast, two_party: Run) -> None:
    """The first-batch test has 64 rows; pooled over all 455 rows of epoch 0 the band is tight enough that a
    leak giving 75 % accuracy fails, and the naive check below shows the same arithmetic flagging one."""
    d, run = breast, two_party
    accs, n = _pooled_accuracies(d, run)
    assert len(accs) >= 10, sorted(accs)
    # what the host decrypted in every batch is pooled too (for ckks: every limb and its flood + noise part)
    tags = [DECRYPTED_ROWS[run.params.he_scheme]] + (["[rlwe:noise0]"] if run.params.he_scheme == "ckks" else [])
    assert all(any(t in k[0] and k[0].startswith("recv:lr2.conversion") for k in accs) for t in tags), sorted(accs)
    bound = chance_accuracy_bound(n, majority_rate(d.y_tr), tests=len(accs))
    best = max(accs.values())
    print(f"\n[shipped host, {run.params.he_scheme}, epoch 0 pooled] {len(accs)} guesses over {n} rows; best {best:.3f}; "
          f"chance bound {bound:.3f}")
    assert bound < 0.75
    assert best <= bound, sorted(accs.items(), key=lambda kv: -kv[1])[:3]


def test_naive_partial_label_leak_is_flagged_by_the_pooled_check(breast: Breast, two_party: Run) -> None:
    """Paired with the test above: the same view plus one per-row value that agrees with the labels on 80 %
    of the rows (a partial leak the first-batch test alone could miss) is flagged."""
    d, run = breast, two_party
    rng = np.random.default_rng(5)

    def leak(b: int, rows: np.ndarray):
        y = d.y_tr[rows].astype(float)
        noisy = np.where(rng.random(len(rows)) < 0.8, y, 1 - y)
        return ("leak:partial_labels", (2 * noisy - 1).tolist())

    accs, n = _pooled_accuracies(d, run, inject=leak)
    bound = chance_accuracy_bound(n, majority_rate(d.y_tr), tests=len(accs))
    flagged = {k: a for k, a in accs.items() if a > bound}
    print(f"\n[naive partial leak, {run.params.he_scheme}, epoch 0 pooled] flagged {sorted(flagged)} (bound {bound:.3f})")
    assert flagged and all(k[0] == "leak:partial_labels" for k in flagged)
