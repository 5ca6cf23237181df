"""#13 items 5 and 6, for real: worker processes die with their node, shutdown leaves no traceback, and failures
that used to look like "internal error" or "not healthy after 5s" are named (disks, certificates, clocks, CLI options).

Processes are found through /proc (no psutil); disks are made full or read-only by the kernel itself in a private
mount namespace (``unshare``: a tiny tmpfs, no root needed) where that is available, and by a failing ``fsync`` /
``os.write`` on the real write path otherwise.
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import grpc
import pandas as pd
import pytest
import yaml
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from fedcredit.runtime.cli.client import OperatorClient
from fedcredit.runtime.cli.demo import Cluster
from fedcredit.runtime.config import DatasetConfig, JobSpec, parse_config
from fedcredit.runtime.coordinator.store import Store
from fedcredit.runtime.errors import (CertificateExpiredError, CertificateNotYetValidError, StorageError, TlsHandshakeError,
                                      from_rpc_error, storage_error, to_status_code)
from fedcredit.runtime.files import atomic_write
from fedcredit.runtime.security.certs import CertLayout, TlsMaterial, init_certs, load_tls
from fedcredit.runtime.security.transport import create_channel, serve, wait_healthy
from fedcredit.runtime.transcript import TranscriptWriter
from helpers import DATA, SECRET, signer

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable
NOW = dt.datetime.now(dt.timezone.utc)
PURPOSE = "financing.credit_risk_model"


# --------------------------------------------------------------------------
# /proc
# --------------------------------------------------------------------------
def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of ``pid``, or None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = raw[raw.rindex(")") + 2:].split()
    return fields[0], int(fields[1])


def _alive(pid: int) -> bool:
    s = _stat(pid)
    return s is not None and s[0] not in ("Z", "X")


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            s = _stat(int(entry.name))
            if s is not None and s[1] == pid and s[0] not in ("Z", "X"):
                out.append(int(entry.name))
    return out


def _wait_gone(pids: list[int], timeout_s: float = 15.0) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        left = [p for p in pids if _alive(p)]
        if not left:
            return []
        time.sleep(0.1)
    return [p for p in pids if _alive(p)]


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONUNBUFFERED="1", COLUMNS="200", TERM="dumb", NO_COLOR="1")


# --------------------------------------------------------------------------
# 5. the process pool dies with its node
# --------------------------------------------------------------------------
POOL_SCRIPT = textwrap.dedent("""
    import sys, threading
    from fedcredit.runtime.node.workers import NodeProcessPool
    box = {}
    # made in one short-lived thread and first used (the workers spawned) in another, as a job's thread does:
    # the workers must outlive both
    t = threading.Thread(target=lambda: box.update(pool=NodeProcessPool(2)))
    t.start(); t.join()
    pool = box["pool"]
    t = threading.Thread(target=lambda: box.update(first=list(pool.map(abs, range(-50, 0)))))
    t.start(); t.join()
    second = list(pool.map(abs, range(-5, 0)))  # from another thread, after the first one ended
    assert box["first"] == list(range(50, 0, -1)) and second == [5, 4, 3, 2, 1], (box, second)
    print(" ".join(map(str, pool.worker_pids())), flush=True)
    threading.Event().wait()
""")


def test_pool_workers_survive_their_job_thread_and_die_with_a_killed_node() -> None:
    parent = subprocess.Popen([PY, "-c", POOL_SCRIPT], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(), cwd=ROOT)
    children: list[int] = []
    try:
        line = parent.stdout.readline().decode()  # type: ignore[union-attr]
        workers = [int(p) for p in line.split()]
        assert len(workers) == 2, (line, parent.stderr.read().decode() if parent.poll() is not None else "")  # type: ignore[union-attr]
        time.sleep(0.5)  # the job threads have ended, the workers live on (their death signal follows the pool's own thread)
        assert all(_alive(w) for w in workers)
        assert all(_stat(w)[1] == parent.pid for w in workers)  # type: ignore[index]
        children = _children(parent.pid)  # the workers and multiprocessing's resource tracker
        assert set(workers) <= set(children)
    finally:
        parent.kill()
        parent.wait()
    assert _wait_gone(children) == []


WATCHDOG_SCRIPT = textwrap.dedent("""
    import os, subprocess, sys
    # a grandchild that has only the watchdog (no prctl): the fallback where PR_SET_PDEATHSIG is missing
    child = subprocess.Popen([sys.executable, "-c",
        "import os; from fedcredit.runtime.node.workers import _watch_parent; _watch_parent(os.getppid(), 0.2)"])
    print(child.pid, flush=True)
    import threading; threading.Event().wait()
""")


def test_the_parent_watchdog_alone_ends_an_orphan() -> None:
    parent = subprocess.Popen([PY, "-c", WATCHDOG_SCRIPT], stdout=subprocess.PIPE, env=_env(), cwd=ROOT)
    try:
        child = int(parent.stdout.readline())  # type: ignore[union-attr]
        time.sleep(1.0)
        assert _alive(child)
    finally:
        parent.kill()
        parent.wait()
    assert _wait_gone([child], timeout_s=10) == []


def _credit_subset(folder: Path, rows: int) -> tuple[Path, Path]:
    """The first ``rows`` rows of the default-credit example, as the bank and the platform hold them."""
    g = pd.read_csv(DATA / "default_credit_hetero_guest.csv", nrows=rows)
    h = pd.read_csv(DATA / "default_credit_hetero_host.csv", nrows=rows)
    gp, hp = folder / "guest.csv", folder / "host.csv"
    g.to_csv(gp, index=False)
    h.to_csv(hp, index=False)
    return gp, hp


def _logs(cluster: Cluster) -> dict[str, str]:
    return {p.stem: p.read_text(errors="replace") for p in (cluster.workdir / "logs").glob("*.log")}


@pytest.mark.integration
def test_kill_9_of_a_party_node_during_training_leaves_no_pool_worker(tmp_path: Path) -> None:
    gp, hp = _credit_subset(tmp_path, 3000)  # 2,400 training rows: the node encrypts on a process pool (>= 2,048)
    cluster = Cluster(tmp_path / "c", {"bank": {"credit": DatasetConfig(path=gp, label_column="y")},
                                       "platform": {"credit": DatasetConfig(path=hp)}})
    spec = parse_config(JobSpec, {"kind": "train", "purpose": PURPOSE, "guest": {"party": "bank", "dataset": "credit"},
                                  "host": {"party": "platform", "dataset": "credit"},
                                  "training": {"key_bits": 1024, "max_epochs": 3}, "seed": 3}, source="t")
    with cluster:
        bank = cluster.procs["bank"]
        with OperatorClient(cluster.client_config()) as client:
            job = client.submit(spec).job_id
            deadline = time.monotonic() + 240
            workers: list[int] = []
            while not workers and time.monotonic() < deadline:
                cluster.check_alive()
                assert client.get(job).state in ("pending", "running"), client.get(job).error
                workers = _children(bank.pid)
                time.sleep(0.2)
        assert workers, "the bank's node never started its process pool"
        time.sleep(0.5)
        workers = _children(bank.pid)
        cluster.kill("bank")
        assert _wait_gone(workers) == [], "pool workers outlived their node after kill -9"
        # the platform, mid-job too (waiting for the bank): SIGTERM stops it cleanly, its pool with it
        platform = cluster.procs["platform"]
        its_children = _children(platform.pid)
        platform.send_signal(signal.SIGTERM)
        assert platform.wait(timeout=60) == 0
        assert _wait_gone(its_children) == []
    log = _logs(cluster)["platform"]
    assert "signal 15: shutting down" in log and "Traceback" not in log, log[-3000:]


# --------------------------------------------------------------------------
# 5. shutdown without tracebacks
# --------------------------------------------------------------------------
@pytest.mark.integration
def test_sigterm_of_coordinator_and_parties_logs_no_traceback(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path / "c", {"bank": {"b": DatasetConfig(path=DATA / "breast_hetero_guest.csv", label_column="y")},
                                       "platform": {"b": DatasetConfig(path=DATA / "breast_hetero_host.csv")}})
    spec = parse_config(JobSpec, {"kind": "psi", "purpose": PURPOSE, "guest": {"party": "bank", "dataset": "b"},
                                  "host": {"party": "platform", "dataset": "b"}}, source="t")
    with cluster:
        with OperatorClient(cluster.client_config()) as client:
            info = client.wait(client.submit(spec).job_id, timeout_s=120)
        assert info.state == "succeeded", info.error
        time.sleep(1.0)  # the parties are back in their long polls, as a deployment is most of the time
        codes = cluster.stop()
    assert codes == {"coordinator": 0, "bank": 0, "platform": 0}, codes
    logs = _logs(cluster)
    assert set(logs) == {"coordinator", "bank", "platform"}
    for name, text in logs.items():
        assert "signal 15: shutting down" in text, name
        assert "Traceback" not in text and "closed database" not in text, (name, text[-3000:])


@pytest.mark.integration
def test_sigterm_of_a_demo_stops_its_processes_without_a_traceback(tmp_path: Path) -> None:
    gp, hp = _credit_subset(tmp_path, 30000)
    work = tmp_path / "demo"
    demo = subprocess.Popen([PY, "-m", "fedcredit.runtime.cli", "demo", "psi", "--left", str(gp), "--right", str(hp),
                             "--workdir", str(work), "--protocol", "ecdh"],  # ECDH: the slower PSI, so the job is still running
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(), cwd=tmp_path)
    deadline = time.monotonic() + 60
    children: list[int] = []
    while len(children) < 3 and demo.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
        children = _children(demo.pid) if (work / "logs" / "bank.log").exists() else []
    time.sleep(0.5)
    children = _children(demo.pid)
    assert demo.poll() is None and len(children) == 3, children  # coordinator, bank, platform
    demo.send_signal(signal.SIGTERM)
    out, err = demo.communicate(timeout=60)
    assert demo.returncode == 130, err.decode()[-3000:]  # as for Ctrl-C
    assert b"Traceback" not in err and b"Traceback" not in out, err.decode()[-3000:]
    assert _wait_gone(children) == [], "the demo's processes outlived it"
    for log in (work / "logs").glob("*.log"):
        assert "Traceback" not in log.read_text(errors="replace"), log


# --------------------------------------------------------------------------
# 6. disks: the path and the errno, never a value
# --------------------------------------------------------------------------
def test_a_full_disk_under_atomic_write_names_the_target_and_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "jobs" / "j1" / "result.json"

    def full(fd: int) -> None:  # what a full disk's delayed allocation reports at fsync
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError) as info:
        atomic_write(target, json.dumps({"auc": SECRET}).encode())
    err = storage_error(info.value)
    assert err.message == f"cannot write {target}: {os.strerror(errno.ENOSPC)} [ENOSPC]"
    assert err.path == str(target) and err.errno == errno.ENOSPC
    assert str(target) not in err.public_message and str(SECRET) not in err.message + err.public_message
    assert list(target.parent.iterdir()) == []  # no temporary file left behind
    assert to_status_code(err) == grpc.StatusCode.FAILED_PRECONDITION


def test_a_full_disk_under_the_transcript_writer_is_a_storage_error_naming_the_file(
        tmp_path: Path, layout: CertLayout, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "t" / "j1.bank.jsonl"
    writer = TranscriptWriter(path, job_id="j1", identity=signer(layout, "bank"), role="guest", ca_cert_pem=layout.ca_cert.read_bytes())
    before = path.read_bytes()
    real_write = os.write

    def full(fd: int, data: bytes) -> int:
        if fd == writer._fd:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(StorageError) as info:
        writer.event("secret_bearing", value=SECRET)
    assert info.value.message == f"cannot write {path}: {os.strerror(errno.ENOSPC)} [ENOSPC]"
    assert str(SECRET) not in info.value.message and str(path) not in info.value.public_message
    monkeypatch.setattr(os, "write", real_write)
    assert path.read_bytes() == before  # no half record
    writer.event("after")  # the disk has room again: the chain goes on
    writer.close()


def _unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-Urm", "sh", "-c", "mount -t tmpfs -o size=8k tmpfs /mnt 2>/dev/null || "
                            "mount -t tmpfs -o size=8k tmpfs /tmp"], capture_output=True)
    return probe.returncode == 0


needs_unshare = pytest.mark.skipif(not _unshare_works(), reason="no private mount namespace (unshare -Urm) to make a tiny tmpfs in")


def _in_tmpfs(mount: Path, options: str, argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in a private mount namespace with a tmpfs (``options``) on ``mount``: the kernel's own ENOSPC / EROFS."""
    mount.mkdir(parents=True, exist_ok=True)
    script = f'mount -t tmpfs -o {options} tmpfs "{mount}" && exec "$@"'
    return subprocess.run(["unshare", "-Urm", "sh", "-c", script, "sh", *argv], capture_output=True, text=True, env=_env(),
                          cwd=ROOT, timeout=timeout)


FULL_DISK_SCRIPT = textwrap.dedent("""
    import sys
    from pathlib import Path
    from fedcredit.runtime.errors import StorageError, storage_error
    from fedcredit.runtime.files import atomic_write
    from fedcredit.runtime.security.certs import CertLayout
    from fedcredit.runtime.security.signing import load_signing_identity
    from fedcredit.runtime.transcript import TranscriptWriter
    disk, pki = Path(sys.argv[1]), CertLayout.load(Path(sys.argv[2]))
    try:
        atomic_write(disk / "jobs" / "j1" / "model.json", b"7" * 200_000)
    except OSError as exc:
        print("ATOMIC", storage_error(exc).message)
    print("LEFT", sorted(p.name for p in (disk / "jobs" / "j1").iterdir()))
    bank = pki.node("bank")
    w = TranscriptWriter(disk / "t" / "j1.bank.jsonl", job_id="j1", identity=load_signing_identity(bank.sign_cert, bank.sign_key),
                         role="guest", ca_cert_pem=pki.ca_cert.read_bytes())
    try:
        for i in range(10_000):
            w.event("filler", text="x" * 500)
    except StorageError as exc:
        print("TRANSCRIPT", exc.code, exc.message)
""")


@needs_unshare
def test_a_really_full_disk_names_the_path(tmp_path: Path, layout: CertLayout) -> None:
    disk = tmp_path / "disk"
    run = _in_tmpfs(disk, "size=64k", [PY, "-c", FULL_DISK_SCRIPT, str(disk), str(layout.directory)])
    assert run.returncode == 0, run.stderr
    lines = dict(line.split(" ", 1) for line in run.stdout.splitlines())
    assert lines["ATOMIC"] == f"cannot write {disk / 'jobs' / 'j1' / 'model.json'}: No space left on device [ENOSPC]"
    assert lines["LEFT"] == "[]"  # nothing half-written
    assert lines["TRANSCRIPT"] == f"STORAGE cannot write {disk / 't' / 'j1.bank.jsonl'}: No space left on device [ENOSPC]"


FULL_NODE_SCRIPT = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from fedcredit.runtime.cli.client import OperatorClient
    from fedcredit.runtime.cli.demo import Cluster
    from fedcredit.runtime.config import DatasetConfig, JobSpec, parse_config
    work, data = Path(sys.argv[1]), Path(sys.argv[2])
    cluster = Cluster(work, {"bank": {"b": DatasetConfig(path=data / "breast_hetero_guest.csv", label_column="y")},
                             "platform": {"b": DatasetConfig(path=data / "breast_hetero_host.csv")}})
    spec = parse_config(JobSpec, {"kind": "psi", "purpose": "financing.credit_risk_model", "guest": {"party": "bank", "dataset": "b"},
                                  "host": {"party": "platform", "dataset": "b"}}, source="t")
    with cluster:
        with OperatorClient(cluster.client_config()) as client:
            info = client.wait(client.submit(spec).job_id, timeout_s=180)
    print(json.dumps({"job": info.job_id, "state": info.state, "error": info.error}))
""")


@pytest.mark.integration
@needs_unshare
def test_a_party_whose_disk_fills_during_a_job_fails_it_naming_the_path_locally_only(tmp_path: Path) -> None:
    """A real cluster; the bank's workdir is a 24 KiB tmpfs: room to approve and start, not to finish."""
    work = tmp_path / "c"
    run = _in_tmpfs(work / "bank", "size=24k", [PY, "-c", FULL_NODE_SCRIPT, str(work), str(DATA)], timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.splitlines()[-1])
    assert out["state"] == "failed"
    # what the coordinator, the operator and the peer read: the kind of failure, no path
    assert out["error"] == "guest (bank) failed: [STORAGE] a node cannot write its files (disk full, read-only or not permitted); " \
                           "the node's log names the path"
    log = (work / "logs" / "bank.log").read_text()
    assert f"failed: [STORAGE] cannot write {work / 'bank' / 'jobs' / out['job']}/" in log and "No space left on device [ENOSPC]" in log
    assert "Traceback" not in log


def _party_config(tmp_path: Path, layout: CertLayout, workdir: Path, name: str = "bank", port: int = 9) -> Path:
    d = layout.directory / name
    cfg = {"name": name, "coordinator": f"127.0.0.1:{port}", "workdir": str(workdir),
           "tls": {"ca": str(layout.ca_cert), "cert": str(d / "tls.crt"), "key": str(d / "tls.key")},
           "seal": {"cert": str(d / "seal.crt"), "key": str(d / "seal.key")},
           "sign": {"cert": str(d / "sign.crt"), "key": str(d / "sign.key")},
           "datasets": {"b": {"path": str(DATA / "breast_hetero_guest.csv"), "label_column": "y"}}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@needs_unshare
def test_a_party_on_a_read_only_workdir_names_it_at_start(tmp_path: Path, layout: CertLayout) -> None:
    disk = tmp_path / "ro"
    config = _party_config(tmp_path, layout, disk / "work")
    run = _in_tmpfs(disk, "ro,size=64k", [PY, "-m", "fedcredit.runtime.cli", "party", "serve", "--config", str(config)], timeout=60)
    assert run.returncode == 1, (run.stdout, run.stderr)
    assert f"[STORAGE] cannot write {disk / 'work'}: Read-only file system [EROFS]" in run.stderr, run.stderr
    assert "Traceback" not in run.stderr and "internal error" not in run.stderr


COORDINATOR_STORE_SCRIPT = textwrap.dedent("""
    import sys
    from pathlib import Path
    from fedcredit.runtime.coordinator.store import Store
    from fedcredit.runtime.errors import StorageError
    ro, full = Path(sys.argv[1]), Path(sys.argv[2])
    for where in (ro / "c.sqlite", ro / "new" / "c.sqlite"):
        try:
            Store(where)
        except StorageError as exc:
            print("RO", exc.code, exc.message)
    store = Store(full / "c.sqlite")
    try:
        store.upsert_node("bank", b"a" * 1_000_000, b"b", "0", [])
    except StorageError as exc:
        print("FULL", exc.code, exc.message, "|", exc.public_message)
    key = ("j", "bank", "platform", "lr2.shares", 0)
    try:
        store.relay_put(key, b"e", b"x" * 1_000_000)  # a relayed payload is a file beside the database
    except StorageError as exc:
        print("BLOB", exc.code, exc.message.replace(str(store._blob(key)), "<blob>"), "|", exc.public_message)
    store.upsert_node("bank", b"a", b"b", "1", [])  # the failed write left no half transaction behind
    print("AFTER", store.get_node("bank")["software_version"])
""")


@needs_unshare
def test_the_coordinators_read_only_or_full_state_disk_is_a_storage_error_naming_the_database(tmp_path: Path,
                                                                                            layout: CertLayout) -> None:
    """SQLite's own errors (SQLITE_CANTOPEN, SQLITE_READONLY, SQLITE_FULL) map to STORAGE naming the path, as the
    party's workdir errors do; the coordinator daemon on a read-only state folder exits at once naming it."""
    ro, full = tmp_path / "ro", tmp_path / "full"
    ro.mkdir()
    Store(ro / "c.sqlite").close()  # an existing database, then its folder goes read-only
    script = (f'mount --bind "{ro}" "{ro}" && mount -o remount,bind,ro "{ro}" && mount -t tmpfs -o size=256k tmpfs "{full}" '
              '&& exec "$@"')
    full.mkdir()
    run = subprocess.run(["unshare", "-Urm", "sh", "-c", script, "sh", PY, "-c", COORDINATOR_STORE_SCRIPT, str(ro), str(full)],
                         capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=60)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == f"RO STORAGE cannot open {ro / 'c.sqlite'}: unable to open database file [SQLITE_CANTOPEN]", lines
    assert lines[1] == f"RO STORAGE cannot create {ro / 'new'}: Read-only file system [EROFS]", lines
    assert lines[2] == (f"FULL STORAGE cannot write {full / 'c.sqlite'}: database or disk is full [SQLITE_FULL] | the coordinator "
                        "cannot write its state (disk full, read-only or not permitted); its log names the path"), lines
    assert lines[3] == ("BLOB STORAGE cannot write <blob>: No space left on device [ENOSPC] | the coordinator cannot write its "
                        "state (disk full, read-only or not permitted); its log names the path"), lines
    assert lines[4] == "AFTER 1"
    # the daemon itself: a read-only state folder is named at start, no traceback
    d = layout.directory / "coordinator"
    state = tmp_path / "state"
    config = tmp_path / "coordinator.yaml"
    config.write_text(yaml.safe_dump({
        "name": "coordinator", "listen": "127.0.0.1:0", "database": str(state / "db" / "coordinator.sqlite"),
        "tls": {"ca": str(layout.ca_cert), "cert": str(d / "tls.crt"), "key": str(d / "tls.key")},
        "sign": {"cert": str(d / "sign.crt"), "key": str(d / "sign.key")}, "transcripts": str(tmp_path / "t"),
        "parties": ["bank"]}))
    run = _in_tmpfs(state, "ro,size=64k", [PY, "-m", "fedcredit.runtime.cli", "coordinator", "serve", "--config", str(config)],
                    timeout=60)
    assert run.returncode == 1, (run.stdout, run.stderr)
    assert f"[STORAGE] cannot create {state / 'db'}: Read-only file system [EROFS]" in run.stderr, run.stderr
    assert "Traceback" not in run.stderr and "internal error" not in run.stderr


# --------------------------------------------------------------------------
# 6. certificates and clocks: named, within seconds
# --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def expired(tmp_path_factory: pytest.TempPathFactory) -> CertLayout:
    """A CA and nodes issued 30 days ago for 2 days (the project's own profiles, at a shifted time)."""
    return init_certs(tmp_path_factory.mktemp("expired"), ["bank", "platform"], days=2, now=NOW - dt.timedelta(days=30))


@pytest.fixture(scope="module")
def future(tmp_path_factory: pytest.TempPathFactory) -> CertLayout:
    """Issued by a CA whose clock is 3 days ahead of this machine's (or: this machine's clock is behind)."""
    return init_certs(tmp_path_factory.mktemp("future"), ["bank", "platform"], days=30, now=NOW + dt.timedelta(days=3))


def test_an_expired_or_not_yet_valid_own_certificate_is_refused_at_load(expired: CertLayout, future: CertLayout) -> None:
    with pytest.raises(CertificateExpiredError, match=r"TLS certificate .*bank/tls.crt expired at .*; this machine's clock reads "):
        load_tls(expired.ca_cert, expired.node("bank").tls_cert, expired.node("bank").tls_key)
    with pytest.raises(CertificateNotYetValidError, match=r"TLS certificate .*bank/tls.crt is not valid before .*clock reads .*behind"):
        load_tls(future.ca_cert, future.node("bank").tls_cert, future.node("bank").tls_key)


@pytest.mark.parametrize("which", ["expired", "future"])
def test_a_party_with_an_invalid_certificate_exits_at_once_naming_it(which: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    pki: CertLayout = request.getfixturevalue(which)
    config = _party_config(tmp_path, pki, tmp_path / "work")
    t0 = time.monotonic()
    run = subprocess.run([PY, "-m", "fedcredit.runtime.cli", "party", "serve", "--config", str(config)], capture_output=True,
                         text=True, env=_env(), cwd=ROOT, timeout=60)
    seconds = time.monotonic() - t0
    code = "CERT_EXPIRED" if which == "expired" else "CERT_NOT_YET_VALID"
    assert run.returncode == 2 and f"[{code}]" in run.stderr and "bank/tls.crt" in run.stderr, (run.stderr, seconds)
    assert "not healthy" not in run.stderr and "Traceback" not in run.stderr


def _material(pki: CertLayout, name: str, ca: bytes) -> TlsMaterial:
    f = pki.node(name)  # read directly, past load_tls's own check: the other machine's clock thinks it valid
    return TlsMaterial(ca, f.tls_cert.read_bytes(), f.tls_key.read_bytes())


@pytest.mark.parametrize("which, error, words", [
    ("expired", CertificateExpiredError, "TLS certificate has expired by this machine's clock"),
    ("future", CertificateNotYetValidError, "TLS certificate is not valid yet by this machine's clock"),
])
def test_the_coordinators_invalid_certificate_is_named_from_the_handshake(
        which: str, error: type[Exception], words: str, request: pytest.FixtureRequest, layout: CertLayout) -> None:
    """Skewed clocks: the coordinator's certificate, valid by its own clock, is not by this node's."""
    pki: CertLayout = request.getfixturevalue(which)
    cas = layout.ca_cert.read_bytes() + pki.ca_cert.read_bytes()
    with serve(_material(pki, "coordinator", cas), health_servicer=health.HealthServicer(), grace_s=0) as (_, port):
        target = f"127.0.0.1:{port}"
        with create_channel(target, _material(layout, "bank", cas), server_name="coordinator") as channel:
            with pytest.raises(error) as info:  # named long before the 30 s this waits for a healthy server
                wait_healthy(channel, 30.0, target=target)
            with pytest.raises(grpc.RpcError) as failed:  # any other call (a poll, a relay message, the operator's client)
                health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert f"{target}'s {words} (it reads " in str(info.value)
    mapped = from_rpc_error(failed.value, target=target)
    assert type(mapped) is error and f"{target}'s {words}" in mapped.message


def test_a_coordinator_refusing_this_nodes_certificate_is_named_with_the_clock(expired: CertLayout, layout: CertLayout) -> None:
    cas = layout.ca_cert.read_bytes() + expired.ca_cert.read_bytes()
    with serve(_material(layout, "coordinator", cas), grace_s=0) as (_, port):
        target = f"127.0.0.1:{port}"
        with create_channel(target, _material(expired, "bank", cas), server_name="coordinator") as channel:
            with pytest.raises(TlsHandshakeError, match="closed every connection during the TLS handshake.*clock reads"):
                wait_healthy(channel, 3.0, target=target)


def _party_run(config: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PY, "-m", "fedcredit.runtime.cli", "party", "serve", "--config", str(config)], capture_output=True,
                          text=True, env=_env(), cwd=ROOT, timeout=timeout)


def test_registering_with_a_coordinator_of_another_ca_fails_at_once_naming_it(tmp_path: Path, layout: CertLayout,
                                                                            other_layout: CertLayout) -> None:
    """A certificate is not a transient failure: the party exits naming the handshake (it used to retry it forever)."""
    with serve(_material(layout, "coordinator", layout.ca_cert.read_bytes()), health_servicer=health.HealthServicer(),
               grace_s=0) as (_, port):
        run = _party_run(_party_config(tmp_path, other_layout, tmp_path / "work", port=port), timeout=45)
    assert run.returncode != 0 and "[TLS_HANDSHAKE]" in run.stderr, run.stderr
    assert "does not verify against this node's CA" in run.stderr and "Traceback" not in run.stderr


def test_registering_with_a_coordinator_that_refuses_this_certificate_fails_within_seconds_naming_it(
        tmp_path: Path, layout: CertLayout, other_layout: CertLayout) -> None:
    """The coordinator closes every handshake (this node's certificate is from a CA it does not trust, as an expired
    one or a skewed clock would look): named with the clock's reading, after a few seconds, not retried forever."""
    both = tmp_path / "cas.pem"
    both.write_bytes(other_layout.ca_cert.read_bytes() + layout.ca_cert.read_bytes())
    with serve(_material(layout, "coordinator", layout.ca_cert.read_bytes()), health_servicer=health.HealthServicer(),
               grace_s=0) as (_, port):
        config = _party_config(tmp_path, other_layout, tmp_path / "work", port=port)
        cfg = yaml.safe_load(config.read_text())
        cfg["tls"]["ca"] = str(both)  # the party trusts the coordinator; the coordinator does not trust the party
        config.write_text(yaml.safe_dump(cfg))
        run = _party_run(config, timeout=60)
    assert run.returncode != 0 and "[TLS_HANDSHAKE]" in run.stderr, run.stderr
    assert "closed every connection during the TLS handshake" in run.stderr and "clock reads" in run.stderr


def test_registering_retries_while_the_coordinator_refuses_connections(tmp_path: Path, layout: CertLayout) -> None:
    """Nothing listens (a coordinator restarting): that is transient, the party keeps trying."""
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = _party_config(tmp_path, layout, tmp_path / "work", port=port)
    proc = subprocess.Popen([PY, "-m", "fedcredit.runtime.cli", "party", "serve", "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=ROOT)
    try:
        with pytest.raises(subprocess.TimeoutExpired):  # longer than wait_healthy's 5 s and the handshake grace
            proc.wait(timeout=20)
    finally:
        proc.kill()
        _, err = proc.communicate()
    assert "cannot register with the coordinator" in err and "retrying" in err, err
    assert "TLS_HANDSHAKE" not in err and "Traceback" not in err


# --------------------------------------------------------------------------
# 6. the CLI: a bad option value is a usage error naming the option
# --------------------------------------------------------------------------
@pytest.mark.parametrize("argv, option", [
    (["demo", "--batch-size", "abc"], "--batch-size"),
    (["demo", "--batch-size", "0"], "--batch-size"),
    (["demo", "--mode", "fhe"], "--mode"),
    (["demo", "psi", "--left", "a.csv", "--right", "b.csv", "--protocol", "rsa"], "--protocol"),
    (["demo", "psi", "--left", "a.csv", "--right", "b.csv", "--reveal", "all"], "--reveal"),
    (["audit", "report", "t.jsonl", "--out", "r.html", "--format", "pdf"], "--format"),
    (["job", "list", "--limit", "abc"], "--limit"),
])
def test_a_bad_option_value_exits_2_naming_the_option(argv: list[str], option: str, tmp_path: Path) -> None:
    run = subprocess.run([PY, "-m", "fedcredit.runtime.cli", *argv], capture_output=True, text=True, env=_env(), cwd=tmp_path, timeout=60)
    assert run.returncode == 2, (run.returncode, run.stderr)
    assert f"Invalid value for '{option}'" in run.stderr or f"[CONFIG] {option} " in run.stderr, run.stderr
    assert "internal error" not in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "fedcredit-demo").exists()  # refused before anything started


# --------------------------------------------------------------------------
# 7. the systemd units run real commands, hardened
# --------------------------------------------------------------------------
DEPLOY = ROOT / "examples" / "deploy"


def _unit(name: str) -> dict[str, list[str]]:
    """key -> values of a unit file's [Service] section (a key may repeat)."""
    out: dict[str, list[str]] = {}
    section = ""
    for raw in (DEPLOY / name).read_text().splitlines():
        line = raw.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


@pytest.mark.parametrize("unit, state", [("fedcredit-coordinator.service", "/var/lib/fedcredit/coordinator"),
                                         ("fedcredit-party@.service", "/var/lib/fedcredit/%i")])
def test_the_systemd_units_are_hardened_and_start_a_real_command(unit: str, state: str, tmp_path: Path) -> None:
    s = _unit(unit)
    hardening = {"User": "fedcredit", "ProtectSystem": "strict", "NoNewPrivileges": "yes", "Restart": "on-failure",
                 "ReadWritePaths": state, "ProtectHome": "yes", "PrivateTmp": "yes", "CapabilityBoundingSet": "",
                 "UMask": "0077", "KillSignal": "SIGTERM", "RestartPreventExitStatus": "2"}
    assert {k: s.get(k, [None])[-1] for k in hardening} == hardening
    assert s["StateDirectory"] == [state.removeprefix("/var/lib/")]  # the one writable path is the one systemd makes
    # the command line is the CLI's own: run it with a config that is missing, it must complain about the file, not the options
    argv = s["ExecStart"][0].split()
    assert argv[0] == "/opt/fedcredit/bin/fedcredit"
    config = argv.index("--config") + 1
    argv[config] = str(tmp_path / "missing.yaml")
    run = subprocess.run([PY, "-m", "fedcredit.runtime.cli", *argv[1:]], capture_output=True, text=True, env=_env(), timeout=60)
    assert run.returncode == 2 and "missing.yaml" in run.stderr and "No such option" not in run.stderr, run.stderr
