"""Red team: with the bank's training labels permuted, the platform's view looks the same on the wire.

Two in-memory two-party runs with the same data, seeds and keys, one with the
true training labels and one with them permuted: the host must receive the
same steps, in the same order, from the same sender, with the same payload
types and the same encoded sizes (:func:`fedcredit.runtime.codec.encode_payload`).
Sizes matter because the coordinator relays sealed payloads: their lengths
are what it (and anyone on the path) sees.

Naive variant: a deliberately leaky guest that sends, after the first batch, a
message whose size is a variable-width encoding of that batch's label sum
(4 bytes per positive row; :class:`.views.LabelCountHint`). The very same
comparison flags it.

Both run with each engine (``he_scheme``: ``paillier``, ``ckks``).
"""

from __future__ import annotations

import random
from dataclasses import replace

import numpy as np
import pytest

from fedcredit.protocols.core import Role, run_local
from fedcredit.protocols.hetero_lr import epoch_batches
from fedcredit.protocols.hetero_lr import two_party as tp

from .common import PARAMS, SCHEMES, Breast, Recorder, party_keypair
from .views import LabelCountHint, Observer, leaky_guest, leaky_host, received_signature, wire_size

G, H = Role.GUEST, Role.HOST
# Two epochs: the per-epoch loss exchange and the epoch decision are in the view too.
P2 = replace(PARAMS, max_epochs=2)


@pytest.fixture(scope="module")
def labels(breast: Breast) -> dict[str, np.ndarray]:
    permuted = np.random.default_rng(5).permutation(breast.y_tr)
    assert (permuted != breast.y_tr).any()
    return {"true": breast.y_tr, "permuted": permuted}


#: Steps only the modeling options send to the host: class_weight (Paillier) and early stopping.
OPTION_STEPS = {tp.TwoPartyStep.REWEIGHT.wire, tp.TwoPartyStep.VALIDATION_DECISION.wire}


def _host_view(d: Breast, y: np.ndarray, *, leak: bool, scheme: str, options: bool = False) -> Recorder:
    params = replace(P2, he_scheme=scheme)
    val: dict = {}
    if options:  # class weights (Paillier only) and early stopping on half of the held-out rows; a patience of
        # max_epochs never stops early, so the number of messages does not depend on the labels
        params = replace(params, class_weight="balanced" if scheme == "paillier" else None, patience=P2.max_epochs)
        half = len(d.y_te) // 2
        val = {"x_val": (d.xg_te[:half], d.xh_te[:half]), "y_val": d.y_te[:half]}
    # the same keys and seeds in every run
    kg, kh = party_keypair(params, d.n_train, 501), party_keypair(params, d.n_train, 502)
    host = Observer()
    guest = tp.guest_program(d.xg_tr, y, d.xg_te, d.y_te, params, random.Random(1), keypair=kg,
                             **({"x_val": val["x_val"][0], "y_val": val["y_val"]} if options else {}))
    hprog = tp.host_program(d.xh_tr, d.xh_te, params, random.Random(2), keypair=kh,
                            **({"x_val": val["x_val"][1]} if options else {}))
    if leak:
        batches = epoch_batches(d.n_train, P2.batch_size_for(d.n_train), P2.seed, 0)
        guest, hprog = leaky_guest(guest, y, batches, hints=1), leaky_host(hprog, hints=1)
    out = run_local({G: guest, H: host.wrap(hprog)})
    assert out[G].epochs == 2
    return host.recorder


def _first_difference(a: list, b: list) -> str:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"message {i}: {x} vs {y}"
    return f"lengths {len(a)} vs {len(b)}" if len(a) != len(b) else "none"


@pytest.mark.parametrize("scheme", SCHEMES)
def test_shipped_host_view_is_identical_under_permuted_labels(breast: Breast, labels: dict[str, np.ndarray], scheme: str) -> None:
    a = received_signature(_host_view(breast, labels["true"], leak=False, scheme=scheme))
    b = received_signature(_host_view(breast, labels["permuted"], leak=False, scheme=scheme))
    print(f"\n[shipped, {scheme}] host received {len(a)} messages; first difference between true and permuted labels: "
          f"{_first_difference(a, b)}")
    assert len(a) > 50
    # It is a real comparison: every step the host can receive (ciphertexts, masked values, loss) is in it.
    to_host = {s.wire for s in tp.TwoPartyStep if H in s.spec.receivers} - OPTION_STEPS
    assert to_host <= {w for w, *_ in a}, to_host
    assert a == b


@pytest.mark.parametrize("scheme", SCHEMES)
def test_host_view_with_class_weights_and_early_stopping_is_identical_under_permuted_labels(
        breast: Breast, labels: dict[str, np.ndarray], scheme: str) -> None:
    """The permuted labels change every row's class weight (and the validation metric): still the same view."""
    a = received_signature(_host_view(breast, labels["true"], leak=False, scheme=scheme, options=True))
    b = received_signature(_host_view(breast, labels["permuted"], leak=False, scheme=scheme, options=True))
    print(f"\n[options, {scheme}] host received {len(a)} messages; first difference: {_first_difference(a, b)}")
    to_host = {s.wire for s in tp.TwoPartyStep if H in s.spec.receivers}
    if scheme != "paillier":
        to_host.discard(tp.TwoPartyStep.REWEIGHT.wire)  # class weights are Paillier only
    assert to_host <= {w for w, *_ in a}, to_host
    assert a == b


@pytest.mark.parametrize("scheme", SCHEMES)
def test_naive_label_sized_message_is_detected(breast: Breast, labels: dict[str, np.ndarray], scheme: str) -> None:
    rows = epoch_batches(breast.n_train, P2.batch_size_for(breast.n_train), P2.seed, 0)[0]
    k_true, k_perm = int(labels["true"][rows].sum()), int(labels["permuted"][rows].sum())
    assert k_true != k_perm  # precondition: the first batch's label sum changes under this permutation
    a = received_signature(_host_view(breast, labels["true"], leak=True, scheme=scheme))
    b = received_signature(_host_view(breast, labels["permuted"], leak=True, scheme=scheme))
    diff = [(x, y) for x, y in zip(a, b) if x != y]
    print(f"\n[naive leaky, {scheme}] first-batch positives {k_true} vs {k_perm}; {len(diff)} differing message(s): {diff}")
    assert a != b
    sizes = [wire_size(LabelCountHint(bytes(4 * k))) for k in (k_true, k_perm)]
    assert diff == [(("leak.label_count_hint", "LabelCountHint", None, sizes[0]),
                     ("leak.label_count_hint", "LabelCountHint", None, sizes[1]))]
