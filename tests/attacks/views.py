"""What a role can see, and the attacks run on it.

A role's *view* of one batch is (a) everything it received in that batch, with
every ciphertext under a key it holds decrypted, and (b) everything in its own
memory at the end of the batch: its shares, its masks, its own gradient if it
has one. (b) is read from the role program's generator frames at its training
``Progress`` marker -- the real program's own variables, not a re-implementation,
so "what the host can form" includes e.g. the coordinated host's unmasked
gradient and the two-party host's weight shares.

Every numeric vector of the right length in a view, in each natural
representation (signed, reduced mod 2^ring_bits) and pairwise sums and
differences of same-length integer vectors, is a *quantity*. The label attacks
turn each quantity into 0/1 guesses; the score attacks into estimates of u_H.

Both engines of the two-party mode are understood. Paillier: every
:class:`EncryptedVector` under a key the role holds is decrypted. RLWE (``he_scheme:
ckks``): every masked product (:class:`RlweCiphertexts` with ``c1``) under the
role's own key is decrypted in full -- ``c0 + c1 s``, inverse NTT, exact CRT lift
of the coefficients (:func:`rlwe_decrypt`) -- and read at the layout's target
coefficients as the protocol does (:class:`RlweKey`): per row the combined value
``Σ_j 2^(βj) (value_j + R_j)`` (its residue mod ``2^ℓ`` is the protocol's share),
per limb ``value_j + R_j``, and per limb the part below ``Δ``, ``F + noise``
(what a noise-based attack reads).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, is_dataclass
from itertools import combinations
from typing import Any, Iterable, Iterator

import gmpy2
import numpy as np
from google.protobuf import wrappers_pb2

from fedcredit.protocols.core import Aggregate, Progress, ProtocolStep, Recv, Role, Send, StepSpec, tap
from fedcredit.protocols.hetero_lr.protocol import EncryptedVector
from fedcredit.protocols.hetero_lr.share_engine import RlweShareEngine
from fedcredit.protocols.hetero_lr.two_party_messages import MaskedConversion, MaskedGradientShare, MaskedLoss
from fedcredit.protocols.rlwe import scheme as rl

from .common import Event, Recorder
from .milp import solve

_INTS = (int, np.integer, type(gmpy2.mpz(0)))


# --------------------------------------------------------------------------- observing a role


@dataclass
class Observer:
    """Wrap a role program: record its actions and replies, and snapshot its memory at each ``Progress``."""

    recorder: Recorder = field(default_factory=Recorder)
    snapshots: list[dict[str, Any]] = field(default_factory=list)  # one per training Progress, in order
    stage: str = "train"

    def wrap(self, program: Any) -> Any:
        """``fedcredit.protocols.core.tap`` on ``program``, with a memory snapshot at each training progress marker."""

        def on_action(action: Any) -> None:
            self.recorder.on_action(action)
            if isinstance(action, Progress) and action.stage == self.stage:
                self.snapshots.append(memory(program))

        return tap(program, on_action, self.recorder.on_reply)


def memory(program: Any) -> dict[str, Any]:
    """The local variables of a suspended role program and of every generator it delegates to."""
    out: dict[str, Any] = {}
    g = program
    while g is not None and getattr(g, "gi_frame", None) is not None:
        for k, v in dict(g.gi_frame.f_locals).items():
            out[f"{g.gi_code.co_name}.{k}"] = v.copy() if isinstance(v, np.ndarray) else (tuple(v) if isinstance(v, list) else v)
        g = g.gi_yieldfrom
    return out


# --------------------------------------------------------------------------- numeric vectors in a view


def _is_int(v: Any) -> bool:
    return isinstance(v, _INTS) and not isinstance(v, (bool, np.bool_))


def numeric_vectors(obj: Any, name: str, depth: int = 0) -> Iterator[tuple[str, list[int] | np.ndarray]]:
    """1-D numeric vectors (length >= 2) inside ``obj``: int lists as exact Python ints, floats as float64.

    Ciphertexts (:class:`EncryptedVector`, :class:`RlweCiphertexts`) are skipped: see :func:`decrypted_vectors`.
    """
    if depth > 3 or isinstance(obj, (str, bytes, bool, type)) or obj is None:
        return
    if isinstance(obj, (EncryptedVector, rl.RlweCiphertexts)):
        return
    if isinstance(obj, np.ndarray):
        if obj.ndim == 1 and obj.size >= 2:
            if obj.dtype == object:
                if all(_is_int(v) for v in obj):
                    yield name, [int(v) for v in obj]
            elif np.issubdtype(obj.dtype, np.integer):
                yield name, [int(v) for v in obj]
            elif np.issubdtype(obj.dtype, np.floating):
                yield name, obj.astype(float)
        return
    if isinstance(obj, (tuple, list)):
        if len(obj) >= 2 and all(_is_int(v) for v in obj):
            yield name, [int(v) for v in obj]
        elif len(obj) >= 2 and all(isinstance(v, (float, np.floating)) or _is_int(v) for v in obj):
            yield name, np.asarray(obj, dtype=float)
        return
    if is_dataclass(obj):
        for f in fields(obj):
            try:
                value = getattr(obj, f.name)
            except AttributeError:
                continue
            yield from numeric_vectors(value, f"{name}.{f.name}", depth + 1)


# --------------------------------------------------------------------------- RLWE: decrypting what the owner receives


@dataclass(frozen=True, eq=False)
class RlweKey:
    """An RLWE secret key and the layouts its owner opens each masked payload type with.

    The layouts are functions of public sizes (the engine plans them from the job's
    sizes); :meth:`of_engine` takes them from the role's own engine object, which is
    in its memory (``_party.eng``).
    """

    sk: rl.RlweSecretKey
    layouts: dict[type, rl.Layout]

    @classmethod
    def of_engine(cls, eng: RlweShareEngine) -> "RlweKey":
        return cls(eng.sk, {MaskedConversion: eng.conv_peer, MaskedGradientShare: eng.grad_peer,
                            MaskedLoss: eng._loss_layout(eng.grad_peer)})

    @property
    def params(self) -> rl.RlweParams:
        return self.sk.public.params

    @property
    def fingerprint(self) -> bytes:
        return self.sk.public.fingerprint()


def rlwe_decrypt(sk: rl.RlweSecretKey, ct: rl.RlweCiphertexts, index: int, positions: np.ndarray | None = None) -> list[int]:
    """The exact decrypted polynomial of ciphertext ``index``: ``c0 + c1 s``, inverse NTT, centered CRT lift.

    Seeded ciphertexts (the owner's own fresh encryptions) have ``c1`` expanded from their seed, and
    ``positions`` (default: all ``N``) picks the coefficients to lift. A masked product carries ``c0`` only
    at its layout's targets, in order: ``positions`` must then be the first targets (``targets()[:rows]``),
    which is everything the owner can decrypt.
    """
    ctx = rl.context(sk.public.params)
    if ct.c1 is None:
        d = ctx.intt(ctx.add(ct.c0[index], ctx.mul(ctx.uniform_from_seed(ct.seeds[index]), sk.s)))
        return ctx.crt(d, np.arange(ctx.degree) if positions is None else np.asarray(positions))
    pos = np.asarray(positions)
    assert pos.ndim == 1 and pos.size <= ct.c0.shape[2], "a masked product decrypts at its targets only"
    d = ctx.add(ctx.intt(ctx.mul(ct.c1[index], sk.s))[:, pos], ct.c0[index][:, : pos.size])
    return ctx.crt(d, np.arange(pos.size))


def centered_mod(x: int, bits: int) -> int:
    """``x`` mod ``2^bits`` in ``[-2^(bits-1), 2^(bits-1))``: the part of a decrypted coefficient below ``Δ``."""
    half = 1 << (bits - 1)
    return ((x + half) & ((1 << bits) - 1)) - half


def rlwe_targets(key: RlweKey, ct: rl.RlweCiphertexts, layout: rl.Layout) -> list[list[int]]:
    """The lifted target coefficients of a masked product, one list of ``J`` per row (all row blocks)."""
    tgt = layout.targets()
    out: list[list[int]] = []
    for rb in range(len(ct)):
        rows_here = min(layout.row_block, layout.rows - rb * layout.row_block)
        lifted = rlwe_decrypt(key.sk, ct, rb, tgt[:rows_here].ravel())
        out += [lifted[r * layout.limbs : (r + 1) * layout.limbs] for r in range(rows_here)]
    return out


def _rlwe_vectors(payload: Any, key: RlweKey, name: str) -> Iterator[tuple[str, list[int], bool]]:
    layout = key.layouts.get(type(payload))
    fp = key.fingerprint
    for f in fields(payload) if is_dataclass(payload) else ():
        v = getattr(payload, f.name)
        if not isinstance(v, rl.RlweCiphertexts) or v.key_fingerprint != fp or v.c1 is None or layout is None:
            continue
        if len(v) != layout.row_blocks:
            continue
        db, beta = key.params.delta_bits, key.params.limb_bits
        rows = getattr(payload, "rows", 0) or layout.rows  # a conversion's layout is sized for the largest batch
        lifted = rlwe_targets(key, v, layout)[:rows]
        rounded = [[(x + (1 << (db - 1))) >> db for x in row] for row in lifted]  # value + R, exactly
        yield f"{name}.{f.name}[rlwe:rows]", [sum(r << (beta * j) for j, r in enumerate(row)) for row in rounded], True
        for j in range(layout.limbs):
            yield f"{name}.{f.name}[rlwe:limb{j}]", [row[j] for row in rounded], False
            yield f"{name}.{f.name}[rlwe:noise{j}]", [centered_mod(row[j], db) for row in lifted], False


# --------------------------------------------------------------------------- decrypting what a role receives


def role_key(keypair: Any, snapshot: dict[str, Any]) -> Any:
    """The secret key a role holds, as :func:`decrypted_vectors` takes it.

    Paillier: the private key of ``keypair``. RLWE: ``keypair`` is the role's secret
    key; the layouts come from its own engine in ``snapshot`` (its memory).
    """
    if isinstance(keypair, rl.RlweSecretKey):
        eng = snapshot["_party.eng"]
        assert isinstance(eng, RlweShareEngine) and eng.sk is keypair, "the role did not run with this key"
        return RlweKey.of_engine(eng)
    return keypair[1]


def decrypted_vectors(payload: Any, sk: Any, name: str) -> Iterator[tuple[str, list[int], bool]]:
    """Decrypt every ciphertext in ``payload`` that is under ``sk``'s key: ``(name, values, pairable)``.

    Paillier (``sk`` a private key, :class:`EncryptedVector`): the raw plaintexts,
    their signed reading (``m - n`` above ``n/2``), and, for a packed payload
    (fields ``rows``, ``slot_bits``, ``slots``), the unpacked slots, one per row.

    RLWE (``sk`` an :class:`RlweKey`, masked :class:`RlweCiphertexts`): per row the
    combined ``Σ_j 2^(βj) (value_j + R_j)`` (``[rlwe:rows]``), and per limb ``j``
    the rounded ``value_j + R_j`` (``[rlwe:limb j]``) and the part below ``Δ``
    (``[rlwe:noise j]``). Only the combined vector is *pairable* (worth adding to
    what the role holds: its residue mod ``2^ℓ`` is the protocol's share);
    single limbs and noise parts are attacked on their own.
    """
    if isinstance(sk, RlweKey):
        yield from _rlwe_vectors(payload, sk, name)
        return
    pk = sk.public_key
    fp = pk.fingerprint()
    n = int(pk.n)
    for f in fields(payload) if is_dataclass(payload) else ():
        v = getattr(payload, f.name)
        if not isinstance(v, EncryptedVector) or v.key_fingerprint != fp or len(v) == 0:
            continue
        raw = [int(sk.decrypt_raw(c)) for c in v.values]
        yield f"{name}.{f.name}[raw]", raw, True
        yield f"{name}.{f.name}[signed]", [m - n if m > n // 2 else m for m in raw], True
        rows, s_bits, k = (getattr(payload, a, None) for a in ("rows", "slot_bits", "slots"))
        if rows and s_bits and k:
            slots: list[int] = []
            mask = (1 << s_bits) - 1
            for p in raw:
                for _ in range(min(k, rows - len(slots))):
                    slots.append(p & mask)
                    p >>= s_bits
            yield f"{name}.{f.name}[slots]", slots, True


@dataclass(frozen=True)
class Quantity:
    name: str
    values: np.ndarray  # float64, one representation of the vector
    ints: tuple[int, ...] | None = None  # the exact integers, when it is an integer vector


def _signed_mod(v: int, bits: int) -> int:
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def _representations(name: str, vec: list[int] | np.ndarray, ring_bits: int | None) -> Iterator[Quantity]:
    if isinstance(vec, np.ndarray):
        yield Quantity(name, vec.astype(float))
        return
    ints = tuple(int(v) for v in vec)
    yield Quantity(name, _floats(ints), ints)
    if ring_bits:
        reduced = tuple(_signed_mod(v, ring_bits) for v in ints)
        yield Quantity(f"{name}%ring", _floats(reduced), reduced)


def _floats(ints: tuple[int, ...]) -> np.ndarray:
    """As float64, scaled down by a power of two if wider than 480 bits (so no sum of squares overflows)."""
    shift = max(0, max(abs(v).bit_length() for v in ints) - 480)
    return np.array([v / (1 << shift) for v in ints], dtype=float)


def view_quantities(
    received: Iterable[Event],
    snapshot: dict[str, Any] | None,
    *,
    lengths: set[int],
    secret_keys: Iterable[Any] = (),
    ring_bits: int | None = None,
    extra: Iterable[tuple[str, list[int] | np.ndarray]] = (),
    pairs: bool = True,
) -> list[Quantity]:
    """Every quantity of a length in ``lengths`` a role can form from one batch of its view.

    ``received``: the batch's received events; ``snapshot``: the role's memory at
    the end of the batch; ``secret_keys``: keys it holds (each ciphertext under
    one of them is decrypted; :func:`role_key`); ``extra``: more vectors (e.g.
    message sizes). With ``pairs``, sums and differences of same-length integer
    vectors (and their residues mod 2^ring_bits) are added: what a party can
    combine locally (single RLWE limbs and noise parts are not paired: see
    :func:`decrypted_vectors`).
    """
    # (name, vector, came from outside the role, pairable)
    base: list[tuple[str, list[int] | np.ndarray, bool, bool]] = []
    for e in received:
        if e.direction != "received":
            continue
        tag = f"recv#{e.index}:{e.wire}"
        base.extend((k, v, True, True) for k, v in numeric_vectors(e.payload, tag))
        for sk in secret_keys:
            base.extend((k, v, True, p) for k, v, p in decrypted_vectors(e.payload, sk, tag))
    for k, v in (snapshot or {}).items():
        base.extend((k2, v2, False, True) for k2, v2 in numeric_vectors(v, f"mem:{k}"))
    base.extend((k, v, True, True) for k, v in extra)
    base = [b for b in base if len(b[1]) in lengths]

    out: list[Quantity] = []
    for k, v, _, _ in base:
        out.extend(_representations(k, v, ring_bits))
    if pairs:
        # What arrived combined with what the role holds (or with each other): e.g. a decrypted
        # masked value minus the role's own mask. Combinations of its own memory alone are
        # things it computed itself, already in the snapshot.
        ints = [(k, v, r) for k, v, r, p in base if p and not isinstance(v, np.ndarray)]
        for (ka, va, ra), (kb, vb, rb) in combinations(ints, 2):
            if len(va) != len(vb) or not (ra or rb):
                continue
            out.extend(_representations(f"({ka})+({kb})", [a + b for a, b in zip(va, vb)], ring_bits))
            out.extend(_representations(f"({ka})-({kb})", [a - b for a, b in zip(va, vb)], ring_bits))
    # drop constants and exact duplicates (keep the first name)
    seen: set[bytes] = set()
    unique: list[Quantity] = []
    for q in out:
        if not np.all(np.isfinite(q.values)) or np.ptp(q.values) == 0:
            continue
        key = (q.ints.__repr__().encode() if q.ints is not None else q.values.tobytes())
        if key in seen:
            continue
        seen.add(key)
        unique.append(q)
    return unique


# --------------------------------------------------------------------------- label attacks


@dataclass(frozen=True)
class Guess:
    quantity: str
    method: str
    labels: np.ndarray  # 0/1 per row of the batch
    detail: str = ""


def _ls_rows(x: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Min-norm v with X^T v = t (least squares): the linear attack on a gradient-sized vector."""
    return x @ np.linalg.lstsq(x.T @ x, t, rcond=None)[0]


def milp_scales(x: np.ndarray, t: np.ndarray, factors: Iterable[float]) -> list[float]:
    """Scales c worth trying if ``t = X^T (c * y_pm)``: powers of two times each factor, such that the
    least-squares row vector has the norm a +-1 label vector would give (between sqrt(m)/2 and sqrt(rows))."""
    rows, m = x.shape
    rho = float(np.linalg.norm(_ls_rows(x, t)))
    if not math.isfinite(rho) or rho == 0:
        return []
    out = []
    for lam in factors:
        lo, hi = rho / math.sqrt(rows), rho / (math.sqrt(m) / 2)
        for j in range(math.floor(math.log2(lo / lam)), math.ceil(math.log2(hi / lam)) + 1):
            out.append(lam * 2.0**j)
    return out


def label_guesses(
    x_batch: np.ndarray,
    quantities: Iterable[Quantity],
    *,
    scale_factors: Iterable[float] = (1.0,),
    milp_time_limit: float = 0.3,
    milp: bool = True,
) -> list[Guess]:
    """The label attacks on every quantity. ``x_batch``: the attacker's features of the batch.

    * per-row quantities (length = rows): threshold at 0 and at the median;
    * feature-sized quantities (length = m): least squares to per-row values,
      thresholded the same two ways, and the subset-sum MILP over the scales
      :func:`milp_scales` proposes (the attacker keeps the one with least slack;
      it stops at the first exact fit). ``milp=False`` leaves the MILP out (a
      cheaper sweep, for views already attacked with it elsewhere).
    """
    x = np.asarray(x_batch, float)
    rows, m = x.shape
    factors = tuple(scale_factors)
    out: list[Guess] = []
    for q in quantities:
        key = (x.tobytes(), q.values.tobytes(), factors, milp_time_limit, milp)
        if key not in _GUESS_CACHE:
            _GUESS_CACHE[key] = _guesses_for(x, q, factors, milp_time_limit, milp)
        out.extend(Guess(q.name, g.method, g.labels, g.detail) for g in _GUESS_CACHE[key])
    return out


#: The same quantity attacked twice (e.g. the host's view, then the host+relay coalition's) is solved once.
_GUESS_CACHE: dict[tuple, list[Guess]] = {}


def _guesses_for(x: np.ndarray, q: Quantity, factors: tuple[float, ...], milp_time_limit: float, milp: bool) -> list[Guess]:
    rows, m = x.shape
    v = q.values
    out: list[Guess] = []
    if len(v) == rows:
        if np.min(v) < 0 < np.max(v):
            out.append(Guess(q.name, "sign", (v > 0).astype(int)))
        out.append(Guess(q.name, "median", (v > np.median(v)).astype(int)))
    if len(v) == m:
        # Fixed-point scales are powers of two of the raw value, so v is not renormalized.
        r = _ls_rows(x, v)
        out.append(Guess(q.name, "ls-sign", (r > 0).astype(int)))
        out.append(Guess(q.name, "ls-median", (r > np.median(r)).astype(int)))
        if not milp:
            return out
        best = None
        for c in milp_scales(x, v, factors):
            res = solve(x, v, scale=c, labels="pm1", time_limit=milp_time_limit)
            if best is None or res.slack < best[0].slack:
                best = (res, c)
            if res.slack < 1e-6 * m:
                break
        if best is not None:
            out.append(Guess(q.name, "milp", best[0].labels, f"scale={best[1]:.4g} slack={best[0].slack:.3g}"))
    return out


# --------------------------------------------------------------------------- message sizes and a deliberately leaky variant


def wire_size(payload: Any) -> int:
    """Encoded size in bytes, as the runtime would send it (:func:`fedcredit.runtime.codec.encode_payload`).

    The one test-only message type (:class:`LabelCountHint`) is not in the
    codec; it is sized by its own protobuf encoding.
    """
    from fedcredit.runtime.codec import encode_payload
    from fedcredit.protocols.errors import ProtocolError

    try:
        return len(encode_payload(payload)[1])
    except ProtocolError:
        if isinstance(payload, LabelCountHint):
            return len(payload.wire_bytes())
        raise


def received_signature(recorder: Recorder) -> list[tuple[str, str, str | None, int]]:
    """What the wire shows of everything a role received: step, payload type, sender, encoded size, in order."""
    return [(e.wire, type(e.payload).__name__, e.peer, wire_size(e.payload)) for e in recorder.received()]


def relayed_sizes(recorder: Recorder) -> list[tuple[int, str, str, int]]:
    """Per training batch, every message the relay carries to or from this role: (batch, direction, step, size).

    In the two-party mode every party-to-party payload goes through the coordinator,
    sealed: its size is all it sees.
    """
    out, batch = [], 0
    for e in recorder.events:
        if e.direction == "progress":
            batch += 1
        else:
            out.append((batch, e.direction, e.wire, wire_size(e.payload)))
    return out


def size_only_depends_on_layout(recorder: Recorder, batch_rows: list[int]) -> list[str]:
    """Problems if two training batches with the same row count have different message sizes.

    Returns the steps whose sizes vary between such batches (empty: sizes are a
    function of the public batch layout, so they carry nothing about the labels).
    """
    segments: dict[int, list[tuple[str, str, int]]] = {}
    for b, direction, wire, size in relayed_sizes(recorder):
        if b < len(batch_rows):
            segments.setdefault(b, []).append((direction, wire, size))
    if 0 in segments and 1 in segments:  # batch 0's segment starts with the one-off setup messages
        per_batch_wires = {w for _, w, _ in segments[1]}
        while segments[0] and segments[0][0][1] not in per_batch_wires:
            segments[0].pop(0)
    problems = []
    by_rows: dict[int, dict[tuple[str, str], list[int]]] = {}
    for b, seg in sorted(segments.items()):
        sig: dict[tuple[str, str], list[int]] = {}
        for direction, wire, size in seg:
            sig.setdefault((direction, wire), []).append(size)
        ref = by_rows.setdefault(batch_rows[b], sig)
        diff = sorted(f"{d}:{w}" for d, w in set(sig) | set(ref) if sig.get((d, w)) != ref.get((d, w)))
        if diff:
            problems.append(f"batch {b}: {diff}")
    return problems


@dataclass(frozen=True)
class LabelCountHint(Aggregate):
    """Test-only, deliberately leaky: opaque bytes whose *length* is 4 bytes per positive row of a batch.

    It stands for a real bug class: a sparse or variable-width encoding of a
    label-dependent value (here, the batch's label sum). Its content is zeros,
    so only the size channel leaks, as it would under sealing.
    """

    blob: bytes

    def wire_bytes(self) -> bytes:
        return wrappers_pb2.BytesValue(value=self.blob).SerializeToString()


class LeakStep(ProtocolStep):
    HINT = StepSpec("leak.label_count_hint", (Role.GUEST,), (Role.HOST,), LabelCountHint,
                    "deliberately leaky: sized by the batch's positive labels")


def _after_training_batches(program: Any, hints: int, extra: Any) -> Any:
    """Run ``program`` unchanged, and at the end of each of its first ``hints`` training batches (just before its
    progress marker) perform the action ``extra(batch)`` too, its reply discarded."""
    reply: Any = None
    done = 0
    while True:
        try:
            action = program.send(reply)
        except StopIteration as stop:
            return stop.value
        if isinstance(action, Progress) and action.stage == "train" and done < hints:
            yield extra(done)
            done += 1
        reply = yield action


def leaky_guest(program: Any, y01: np.ndarray, batches: list[np.ndarray], hints: int) -> Any:
    """Run the guest unchanged, and at the end of each of its first ``hints`` training batches (just
    before its progress marker) send a :class:`LabelCountHint` sized by that batch's positive labels."""
    def hint(batch: int) -> Send:
        k = int(np.sum(np.asarray(y01)[batches[batch]]))
        return Send(LeakStep.HINT, LabelCountHint(bytes(4 * k)))

    return _after_training_batches(program, hints, hint)


def leaky_host(program: Any, hints: int) -> Any:
    """Run the host unchanged, and receive one hint at the end of each of its first ``hints`` training batches."""
    return _after_training_batches(program, hints, lambda batch: Recv(LeakStep.HINT))
