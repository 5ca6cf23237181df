#!/usr/bin/env python
"""SecretFlow SPU secret-shared logistic regression (SS-LR) as a baseline for ``benchmarks/lr_bench.py``.

This script needs only numpy and ``spu`` (``pip install spu==0.9.5``; ``make spu-venv``). It does
NOT import fedcredit: spu 0.9.5 pins ``numpy<2`` and ``jax<=0.4.34``, so ``lr_bench.py`` runs it as
a subprocess with ``.venv-spu/bin/python``. The hand-off is one ``.npz`` file (:func:`write_inputs`,
called by ``lr_bench.py`` in the project's venv; :func:`read_inputs` here): the arrays fedcredit's
columns train on, *after* fedcredit's preprocessing (standardize on the training rows, clip ±3,
the job's train/test split), the job's mini-batch order for every epoch, and the training
parameters. So the data, split, preprocessing, batches and epochs are fedcredit's, byte for byte.

What runs, for one protocol (``SEMI2K`` or ``CHEETAH``, ring ``FM64``, SPU's default 18 fraction bits):

* two processes, one per party, each with its own ``spu.libspu.link`` brpc context over 127.0.0.1
  (rank 0 = the guest: its features and the labels; rank 1 = the host: its features), and its own
  ``spu.Runtime``. Optionally (``--count-bytes``) the traffic goes through the counting TCP relay of
  ``spu_psi.py``, so bytes on the wire are measured; without it the parties talk directly;
* input sharing as SecretFlow's PYU -> SPU transfer does it: each party splits its own arrays into
  secret shares (``spu.Io.make_shares``, ``VIS_SECRET``) and sends the peer its share;
* training as SecretFlow's SS-SGD (``secretflow.ml.linear.ss_sgd``) does it: one SPU program per
  epoch, written in jax and compiled by SPU, that loops over the epoch's mini-batches (unrolled) on
  secret-shared ``X = [X_guest | X_host | 1]``, ``y`` and weights: ``z = X_B w``, ``p = sigmoid(z)``,
  ``g = X_B^T (p − y) / |B| + l2·w`` (no L2 on the intercept), then the step. The sigmoid is
  SecretFlow's degree-3 Taylor one (``t3``: ``1/2 + z/4 − z³/48``, 0 below −2 and 1 above 2) by
  default, or ``t1``/``seg3``, or ``spu`` (``jax.nn.sigmoid``, evaluated with SPU's ``sigmoid_mode``).
  The step is plain SGD (SecretFlow's) or Nesterov momentum as fedcredit's job runs it
  (``v ← μv + g``, ``w ← w − lr·(g + μv)``), with fedcredit's schedule ``lr / (1 + decay·epoch)``.
  The learning rate and the batch order are public inputs, so one compiled program serves every epoch;
* after training, the test rows' scores ``z`` are computed in SPU and revealed to the guest only
  (the host sends its share), who computes AUC and KS. The weights are never revealed.

Reported (JSON on stdout, or ``--json FILE``): ``compile_s`` (jax trace + SPU compile, once, in this
driver process), ``infeed_s`` (link set-up excluded: sharing the inputs), ``epoch_s`` per epoch (the
slower party's ``Runtime.run``; CHEETAH's first epoch also pays its one-time set-up, keys and base
OTs), ``s_per_epoch`` (compile excluded, mean over all epochs), ``s_per_epoch_after_first``,
``s_per_epoch_with_compile`` ((compile + infeed + training) / epochs), ``cpu_s_per_epoch`` (both
parties' CPU time in training, every thread: robust to other load on the machine), ``predict_s``,
``auc``/``ks`` on the test rows, ``auc_plaintext_same_algorithm`` (the same jax programs in float32
without MPC: what fixed point costs), bytes when counted, and each party's peak RSS.

Usage::

    .venv-spu/bin/python benchmarks/spu_lr.py --inputs spu_lr_inputs.npz --protocol CHEETAH [--count-bytes]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import pickle
import queue as queue_mod
import resource
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

#: the arrays of the hand-off file, in this order; ``order`` is (epochs, n_train) int64, ``bounds`` the
#: batch boundaries (the same every epoch), ``params`` a JSON string
ARRAYS = ("guest_train", "host_train", "y_train", "guest_test", "host_test", "y_test", "order", "bounds")
SIGMOIDS = ("t3", "t1", "seg3", "spu")
OPTIMIZERS = ("sgd", "nesterov")
PROTOCOLS = ("SEMI2K", "CHEETAH")


# --------------------------------------------------------------------------- the .npz hand-off


def write_inputs(path: Path, *, guest_train: np.ndarray, host_train: np.ndarray, y_train: np.ndarray,
                 guest_test: np.ndarray, host_test: np.ndarray, y_test: np.ndarray,
                 batches: Sequence[Sequence[np.ndarray]], params: dict[str, Any]) -> None:
    """Write what SPU trains on: the preprocessed arrays unchanged, every epoch's mini-batches, the parameters.

    ``batches[e]`` is epoch ``e``'s list of row-index arrays (fedcredit's ``epoch_batches``): they must
    cover the training rows once each, with the same sizes every epoch (SPU compiles one program)."""
    n = len(y_train)
    if guest_train.shape[0] != n or host_train.shape[0] != n:
        raise ValueError("training arrays disagree on the number of rows")
    if guest_test.shape[0] != len(y_test) or host_test.shape[0] != len(y_test):
        raise ValueError("test arrays disagree on the number of rows")
    if not batches:
        raise ValueError("no epochs")
    sizes = [len(b) for b in batches[0]]
    order = np.empty((len(batches), n), dtype=np.int64)
    for e, epoch in enumerate(batches):
        if [len(b) for b in epoch] != sizes:
            raise ValueError(f"epoch {e} has other batch sizes than epoch 0: SPU runs one compiled program")
        row = np.concatenate([np.asarray(b, dtype=np.int64) for b in epoch])
        if not np.array_equal(np.sort(row), np.arange(n)):
            raise ValueError(f"epoch {e}'s batches are not a permutation of the training rows")
        order[e] = row
    bounds = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    np.savez(path, guest_train=guest_train, host_train=host_train, y_train=y_train, guest_test=guest_test,
             host_test=host_test, y_test=y_test, order=order, bounds=bounds,
             params=np.array(json.dumps(params, sort_keys=True)))


def read_inputs(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays and parameters :func:`write_inputs` wrote (no pickle: plain arrays and one JSON string)."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in ARRAYS}
        params = json.loads(str(z["params"][()]))
    return arrays, params


# --------------------------------------------------------------------------- metrics (numpy only)


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties counted half)."""
    y = np.asarray(y).ravel().astype(bool)
    s = np.asarray(score, dtype=np.float64).ravel()
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    i = 0
    while i < len(s):  # average ranks over ties
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    pos, neg = int(y.sum()), int((~y).sum())
    if pos == 0 or neg == 0:
        raise ValueError("AUC needs both classes")
    return float((ranks[y].sum() - pos * (pos + 1) / 2) / (pos * neg))


def ks_statistic(y: np.ndarray, score: np.ndarray) -> float:
    y = np.asarray(y).ravel().astype(bool)
    s = np.asarray(score, dtype=np.float64).ravel()
    thresholds = np.unique(s)
    pos = np.sort(s[y])
    neg = np.sort(s[~y])
    tpr = 1 - np.searchsorted(pos, thresholds, side="left") / len(pos)
    fpr = 1 - np.searchsorted(neg, thresholds, side="left") / len(neg)
    return float(np.max(np.abs(tpr - fpr)))


# --------------------------------------------------------------------------- the SPU programs (jax)


def _sigmoid(z: Any, kind: str) -> Any:
    import jax
    import jax.numpy as jnp

    if kind == "t3":  # degree-3 Taylor around 0, clamped outside [-2, 2] (SecretFlow's sig_type='t3')
        poly = 0.5 + z * (0.25 - z * z / 48.0)
        return jnp.where(z < -2.0, 0.0, jnp.where(z > 2.0, 1.0, poly))
    if kind == "t1":  # 1/2 + z/4 clamped to [0, 1] (SecretFlow's default 't1')
        lin = 0.5 + 0.25 * z
        return jnp.clip(lin, 0.0, 1.0)
    if kind == "seg3":
        return jnp.clip(0.5 + 0.125 * z, 0.0, 1.0)
    if kind == "spu":  # SPU's own sigmoid (RuntimeConfig.sigmoid_mode)
        return jax.nn.sigmoid(z)
    raise ValueError(f"unknown sigmoid {kind!r}")


def make_epoch_fn(bounds: Sequence[int], sigmoid: str, optimizer: str, momentum: float, l2: float) -> Any:
    """One epoch of mini-batch training as a jax function of (x_guest, x_host, y, w, v, order, lr) -> (w, v).

    ``order`` (public) permutes the rows; the batches are its slices at ``bounds``. The intercept is the
    last weight and takes no L2."""
    import jax.numpy as jnp

    bounds = [int(b) for b in bounds]

    def epoch(xg: Any, xh: Any, y: Any, w: Any, v: Any, order: Any, lr: Any) -> tuple[Any, Any]:
        x = jnp.concatenate([xg, xh, jnp.ones((xg.shape[0], 1), dtype=xg.dtype)], axis=1)
        pen = jnp.concatenate([jnp.full((x.shape[1] - 1, 1), l2, dtype=xg.dtype), jnp.zeros((1, 1), dtype=xg.dtype)])
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            idx = order[lo:hi]
            xb = jnp.take(x, idx, axis=0)
            yb = jnp.take(y, idx, axis=0)
            p = _sigmoid(xb @ w, sigmoid)
            g = xb.T @ (p - yb) / float(hi - lo) + pen * w
            if optimizer == "nesterov":
                v = momentum * v + g
                w = w - lr * (g + momentum * v)
            else:
                w = w - lr * g
        return w, v

    return epoch


def predict_fn(xg: Any, xh: Any, w: Any) -> Any:
    import jax.numpy as jnp

    x = jnp.concatenate([xg, xh, jnp.ones((xg.shape[0], 1), dtype=xg.dtype)], axis=1)
    return x @ w


def compile_programs(arrays: dict[str, np.ndarray], params: dict[str, Any], sigmoid: str,
                     optimizer: str) -> tuple[bytes, bytes, float]:
    """Compile the epoch and predict programs once (jax -> SPU bytecode); their serialized executables and the time."""
    import spu.libspu as libspu
    import spu.utils.frontend as fe

    secret, public = libspu.Visibility.VIS_SECRET, libspu.Visibility.VIS_PUBLIC
    d = arrays["guest_train"].shape[1] + arrays["host_train"].shape[1] + 1
    f32 = np.float32
    t0 = time.perf_counter()
    epoch = make_epoch_fn(arrays["bounds"], sigmoid, optimizer, float(params["momentum"]), float(params["l2"]))
    train_args = [arrays["guest_train"].astype(f32), arrays["host_train"].astype(f32),
                  arrays["y_train"].astype(f32).reshape(-1, 1), np.zeros((d, 1), f32), np.zeros((d, 1), f32),
                  arrays["order"][0].astype(np.int32), np.float32(0.1)]
    train_exe, _ = fe.compile(fe.Kind.JAX, epoch, train_args, {}, ["xg", "xh", "y", "w", "v", "order", "lr"],
                              [secret] * 5 + [public] * 2, lambda outs: ["w_out", "v_out"])
    pred_args = [arrays["guest_test"].astype(f32), arrays["host_test"].astype(f32), np.zeros((d, 1), f32)]
    pred_exe, _ = fe.compile(fe.Kind.JAX, predict_fn, pred_args, {}, ["xg_test", "xh_test", "w"], [secret] * 3,
                             lambda outs: ["z"])
    return train_exe.SerializeToString(), pred_exe.SerializeToString(), time.perf_counter() - t0


def plaintext_auc(arrays: dict[str, np.ndarray], params: dict[str, Any], sigmoid: str, optimizer: str) -> float:
    """The same jax programs on the same inputs in float32 on the CPU, no MPC: what SPU's fixed point costs in AUC."""
    import jax

    f32 = np.float32
    d = arrays["guest_train"].shape[1] + arrays["host_train"].shape[1] + 1
    epoch = jax.jit(make_epoch_fn(arrays["bounds"], sigmoid, optimizer, float(params["momentum"]), float(params["l2"])))
    w, v = np.zeros((d, 1), f32), np.zeros((d, 1), f32)
    xg, xh = arrays["guest_train"].astype(f32), arrays["host_train"].astype(f32)
    y = arrays["y_train"].astype(f32).reshape(-1, 1)
    for e in range(arrays["order"].shape[0]):
        lr = np.float32(params["learning_rate"] / (1.0 + params["lr_decay"] * e))
        w, v = epoch(xg, xh, y, w, v, arrays["order"][e].astype(np.int32), lr)
    z = np.asarray(predict_fn(arrays["guest_test"].astype(f32), arrays["host_test"].astype(f32), w)).ravel()
    return roc_auc(arrays["y_test"], z)


# --------------------------------------------------------------------------- the two parties


def runtime_config(protocol: str, sigmoid_mode: str = "SIGMOID_DEFAULT") -> Any:
    import spu.libspu as libspu

    config = libspu.RuntimeConfig(protocol=getattr(libspu.ProtocolKind, protocol), field=libspu.FieldType.FM64)
    config.sigmoid_mode = getattr(libspu.RuntimeConfig.SigmoidMode, sigmoid_mode)
    if protocol == "SEMI2K":  # the default, said out loud: rank 0 generates the Beaver triples
        config.beaver_type = libspu.RuntimeConfig.BeaverType.TrustedFirstParty
    return config


def _pack(shares: list[Any]) -> bytes:
    return pickle.dumps([(s.meta, list(s.share_chunks)) for s in shares])


def _unpack(blob: bytes) -> list[Any]:
    import spu.libspu as libspu

    out = []
    for meta, chunks in pickle.loads(blob):  # noqa: S301 - the peer is our own process on loopback
        s = libspu.Share()
        s.meta, s.share_chunks = meta, chunks
        out.append(s)
    return out


def party(rank: int, addresses: list[str], inputs: str, protocol: str, sigmoid_mode: str, train_exe: bytes,
          pred_exe: bytes, timeout_s: int, queue: Any) -> None:
    try:
        import spu
        import spu.libspu as libspu
        import spu.libspu.link as link

        arrays, params = read_inputs(Path(inputs))
        f32 = np.float32
        from spu_psi import open_link

        t0 = time.perf_counter()
        lctx = open_link(link, "fedcredit-spu-lr", addresses, rank, timeout_s)
        t1 = time.perf_counter()
        config = runtime_config(protocol, sigmoid_mode)
        io = spu.Io(2, config)
        rt = spu.Runtime(lctx, config)
        secret, public = libspu.Visibility.VIS_SECRET, libspu.Visibility.VIS_PUBLIC
        peer = 1 - rank
        d = arrays["guest_train"].shape[1] + arrays["host_train"].shape[1] + 1
        # infeed: each party shares what it owns and sends the peer its share
        if rank == 0:
            mine = {"xg": arrays["guest_train"].astype(f32), "y": arrays["y_train"].astype(f32).reshape(-1, 1),
                    "xg_test": arrays["guest_test"].astype(f32), "w": np.zeros((d, 1), f32), "v": np.zeros((d, 1), f32)}
        else:
            mine = {"xh": arrays["host_train"].astype(f32), "xh_test": arrays["host_test"].astype(f32)}
        shares = {name: io.make_shares(value, secret, rank) for name, value in mine.items()}
        lctx.send(peer, _pack([shares[n][peer] for n in mine]))
        theirs_names = ["xh", "xh_test"] if rank == 0 else ["xg", "y", "xg_test", "w", "v"]
        theirs = dict(zip(theirs_names, _unpack(lctx.recv(peer))))
        for name in mine:
            rt.set_var(name, shares[name][rank])
        for name, share in theirs.items():
            rt.set_var(name, share)
        lctx.barrier()
        t2 = time.perf_counter()
        train = libspu.Executable()
        train.ParseFromString(train_exe)
        pred = libspu.Executable()
        pred.ParseFromString(pred_exe)
        epoch_s = []
        cpu0 = time.process_time()
        for e in range(arrays["order"].shape[0]):
            lr = params["learning_rate"] / (1.0 + params["lr_decay"] * e)
            rt.set_var("order", io.make_shares(arrays["order"][e].astype(np.int32), public)[rank])
            rt.set_var("lr", io.make_shares(np.array(lr, dtype=np.float32), public)[rank])
            te = time.perf_counter()
            rt.run(train)
            epoch_s.append(time.perf_counter() - te)
            rt.set_var("w", rt.get_var("w_out"))
            rt.set_var("v", rt.get_var("v_out"))
        t3 = time.perf_counter()
        train_cpu_s = time.process_time() - cpu0
        rt.run(pred)
        z_share = rt.get_var("z")
        result: dict[str, Any] = {}
        if rank == 1:  # reveal the test scores to the guest only
            lctx.send(0, _pack([z_share]))
        else:
            z = np.asarray(io.reconstruct([z_share, _unpack(lctx.recv(1))[0]])).ravel()
            y_test = arrays["y_test"].ravel()
            result = {"auc": roc_auc(y_test, z), "ks": ks_statistic(y_test, z), "n_test": int(len(y_test))}
        t4 = time.perf_counter()
        lctx.stop_link()
        queue.put({"rank": rank, "ok": True, "seconds_link": t1 - t0, "infeed_s": t2 - t1, "epoch_s": epoch_s,
                   "train_s": t3 - t2, "train_cpu_s": train_cpu_s, "predict_s": t4 - t3,
                   "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, **result})
    except BaseException as exc:  # report to the parent rather than hang it
        queue.put({"rank": rank, "ok": False, "error": f"{type(exc).__name__}: {exc}"})


def run(inputs: Path, protocol: str, *, sigmoid: str = "t3", optimizer: str | None = None,
        count_bytes: bool = False, timeout_s: int = 3600) -> dict[str, Any]:
    import spu

    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:
        sys.path.insert(0, here)
    from spu_psi import CountingRelay, checked_results, reserve_port, stop_parties

    arrays, params = read_inputs(inputs)
    optimizer = optimizer or params["optimizer"]
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer {optimizer!r}: SPU's column runs {OPTIMIZERS}")
    train_exe, pred_exe, compile_s = compile_programs(arrays, params, sigmoid, optimizer)
    sigmoid_mode = "SIGMOID_REAL" if sigmoid == "spu" else "SIGMOID_DEFAULT"

    reserved = [reserve_port(), reserve_port()]
    ports = [int(r.getsockname()[1]) for r in reserved]
    relays: list[Any] = []
    if count_bytes:  # relays[r] forwards to party r's server; each party reaches its peer through the relay
        relays = [CountingRelay(ports[0]), CountingRelay(ports[1])]
        views = [[f"127.0.0.1:{ports[0]}", f"127.0.0.1:{relays[1].port}"],
                 [f"127.0.0.1:{relays[0].port}", f"127.0.0.1:{ports[1]}"]]
    else:
        views = [[f"127.0.0.1:{p}" for p in ports]] * 2
    for r in reserved:
        r.close()
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    t = time.perf_counter()
    procs = [ctx.Process(target=party, args=(r, views[r], str(inputs.resolve()), protocol, sigmoid_mode, train_exe,
                                             pred_exe, timeout_s, queue)) for r in range(2)]
    for p in procs:
        p.start()
    results: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(results) < len(procs):
            try:
                results.append(queue.get(timeout=1.0))
            except queue_mod.Empty:
                dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
                if dead and queue.empty():  # a party died without reporting (a crash in native code)
                    raise RuntimeError(f"SPU {protocol}: a party exited with code {dead[0]} without a result") from None
                if time.monotonic() > deadline:
                    raise RuntimeError(f"SPU {protocol}: no result within {timeout_s} s") from None
    finally:
        stop_parties(procs)
    wall = time.perf_counter() - t
    by_rank = checked_results(results, relays, protocol)
    auc_plain = plaintext_auc(arrays, params, sigmoid, optimizer)
    epochs = len(by_rank[0]["epoch_s"])
    epoch_s = [max(a, b) for a, b in zip(by_rank[0]["epoch_s"], by_rank[1]["epoch_s"])]
    infeed_s = max(r["infeed_s"] for r in results)
    out: dict[str, Any] = {
        "spu": getattr(spu, "__version__", "unknown"), "protocol": protocol, "field": "FM64",
        "setting": "two processes over loopback (spu.libspu.link brpc), no network shaping",
        "sigmoid": sigmoid, "optimizer": optimizer, "learning_rate": params["learning_rate"],
        "lr_decay": params["lr_decay"], "momentum": params["momentum"] if optimizer == "nesterov" else 0.0,
        "l2": params["l2"], "batch_size": params["batch_size"], "batches_per_epoch": len(arrays["bounds"]) - 1,
        "epochs": epochs, "n_train": int(len(arrays["y_train"])), "n_test": by_rank[0]["n_test"],
        "compile_s": compile_s, "infeed_s": infeed_s, "epoch_s": epoch_s,
        "s_per_epoch": sum(epoch_s) / epochs,
        "s_per_epoch_after_first": sum(epoch_s[1:]) / (epochs - 1) if epochs > 1 else None,
        "cpu_s_per_epoch": sum(r["train_cpu_s"] for r in results) / epochs,  # both parties, all threads
        "s_per_epoch_with_compile": (compile_s + infeed_s + sum(epoch_s)) / epochs,
        "predict_s": max(r["predict_s"] for r in results), "seconds_link": max(r["seconds_link"] for r in results),
        "seconds_wall": wall, "auc": by_rank[0]["auc"], "ks": by_rank[0]["ks"],
        "auc_plaintext_same_algorithm": auc_plain,
        "peak_rss_mb_per_party": {"guest": by_rank[0]["peak_rss_mb"], "host": by_rank[1]["peak_rss_mb"]},
        "bytes_counted": count_bytes,
    }
    if relays:
        total = relays[0].forward + relays[1].forward + relays[0].back + relays[1].back
        out["bytes"] = {"guest_to_host": relays[1].forward, "host_to_guest": relays[0].forward,
                        "acks": relays[0].back + relays[1].back}
        out["bytes_total"] = total
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=Path, required=True, help=".npz written by lr_bench.py (write_inputs)")
    parser.add_argument("--protocol", required=True, choices=PROTOCOLS)
    parser.add_argument("--sigmoid", default="t3", choices=SIGMOIDS)
    parser.add_argument("--optimizer", default=None, choices=OPTIMIZERS, help="default: the job's (from the inputs)")
    parser.add_argument("--count-bytes", action="store_true", help="route the link through a counting relay")
    parser.add_argument("--json", type=Path, default=None, help="write the result here (default: stdout)")
    args = parser.parse_args(argv)
    result = run(args.inputs, args.protocol, sigmoid=args.sigmoid, optimizer=args.optimizer, count_bytes=args.count_bytes)
    text = json.dumps(result, indent=2)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("GLOG_minloglevel", "2")
    sys.exit(main())
