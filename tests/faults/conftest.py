"""The fault suite's cluster: a real coordinator and two party daemons as processes, the parties talking to the
coordinator through a loopback TCP proxy that can cut every connection or refuse new ones (#13).

The proxy forwards each new connection to the coordinator's current port (read from its port file), so a
coordinator killed with SIGKILL and started again on another port is found again by the same parties: for them
it is one address, as behind a load balancer. Operators use a second proxy that never misbehaves.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from fedcredit.runtime.cli.client import OperatorClient
from fedcredit.runtime.config import ClientConfig, TlsConfig
from fedcredit.runtime.security.certs import init_certs

PURPOSE = "financing.credit_risk_model"


class FaultProxy:
    """A loopback TCP proxy to ``target()``'s port: :meth:`cut` closes every open connection at once;
    while :attr:`refuse` is set, new connections are closed as soon as they are accepted."""

    def __init__(self, target: Callable[[], int]) -> None:
        self._target = target
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self.refuse = False
        self.cuts = 0
        self.accepted = 0
        self._closed = False
        threading.Thread(target=self._accept, name="fault-proxy", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if self.refuse:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self._target()), timeout=2.0)
                upstream.settimeout(None)
            except (OSError, ValueError):
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
                self.accepted += 1
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> int:
        """Close every connection through the proxy (both sides see a reset); returns how many were open."""
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        self.cuts += 1
        return len(conns) // 2

    def close(self) -> None:
        self._closed = True
        self._server.close()
        self.cut()


class Flaky:
    """Cut every connection through ``proxy`` every ``period_s`` while running (a ``with`` block), and after each cut
    drop every new connection for ``refuse_s``."""

    def __init__(self, proxy: FaultProxy, period_s: float, refuse_s: float = 0.0) -> None:
        self.proxy, self.period_s, self.refuse_s = proxy, period_s, refuse_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            self.proxy.refuse = self.refuse_s > 0
            self.proxy.cut()
            self._stop.wait(self.refuse_s)
            self.proxy.refuse = False

    def __enter__(self) -> "Flaky":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _yaml(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")  # JSON is YAML
    return path


class FaultCluster:
    """A coordinator and the bank and platform daemons as child processes, the parties behind a :class:`FaultProxy`."""

    def __init__(self, workdir: Path, datasets: dict[str, dict[str, Any]], coordinator: dict[str, Any],
                 policies: dict[str, dict[str, Any]]) -> None:
        self.workdir = workdir
        self.datasets = datasets
        self.coordinator_settings = coordinator
        self.policies = policies
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.certs = workdir / "certs"
        self.port_file = workdir / "coordinator.port"
        (workdir / "logs").mkdir(parents=True, exist_ok=True)
        init_certs(self.certs, list(datasets), overwrite=True)
        self.proxy = FaultProxy(self.coordinator_port)
        self.operator_proxy = FaultProxy(self.coordinator_port)

    def coordinator_port(self) -> int:
        return int(self.port_file.read_text())

    def _tls(self, name: str) -> dict[str, str]:
        return {"ca": str(self.certs / "ca.crt"), "cert": str(self.certs / name / "tls.crt"), "key": str(self.certs / name / "tls.key")}

    def log(self, name: str) -> str:
        return (self.workdir / "logs" / f"{name}.log").read_text(encoding="utf-8", errors="replace")

    def spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        out = open(self.workdir / "logs" / f"{name}.log", "ab")
        proc = subprocess.Popen([sys.executable, "-m", "fedcredit.runtime.cli", *args], stdout=out, stderr=subprocess.STDOUT,
                                env=dict(os.environ, PYTHONUNBUFFERED="1"), start_new_session=True)
        out.close()
        self.procs[name] = proc
        return proc

    def party_config(self, party: str) -> Path:
        return self.workdir / f"{party}.yaml"

    def start_coordinator(self, timeout_s: float = 60.0) -> None:
        self.port_file.unlink(missing_ok=True)
        cfg = _yaml(self.workdir / "coordinator.yaml", {
            "name": "coordinator", "listen": "127.0.0.1:0", "port_file": str(self.port_file),
            "database": str(self.workdir / "coordinator.sqlite"), "tls": self._tls("coordinator"),
            "sign": {"cert": str(self.certs / "coordinator" / "sign.crt"), "key": str(self.certs / "coordinator" / "sign.key")},
            "transcripts": str(self.workdir / "transcripts"), "parties": list(self.datasets), "operators": ["operator"],
            **self.coordinator_settings})
        proc = self.spawn("coordinator", ["coordinator", "serve", "--config", str(cfg)])
        deadline = time.monotonic() + timeout_s
        while not self.port_file.exists():
            assert proc.poll() is None, self.log("coordinator")
            assert time.monotonic() < deadline, "the coordinator did not start"
            time.sleep(0.1)

    def start_party(self, party: str, name: str | None = None) -> subprocess.Popen[bytes]:
        cfg = _yaml(self.party_config(party), {
            "name": party, "coordinator": f"127.0.0.1:{self.proxy.port}", "tls": self._tls(party),
            "seal": {"cert": str(self.certs / party / "seal.crt"), "key": str(self.certs / party / "seal.key")},
            "sign": {"cert": str(self.certs / party / "sign.crt"), "key": str(self.certs / party / "sign.key")},
            "workdir": str(self.workdir / party), "datasets": self.datasets[party], "policy": self.policies[party]})
        return self.spawn(name or party, ["party", "serve", "--config", str(cfg)])

    def kill(self, name: str) -> None:
        """SIGKILL: no cleanup, like a power cut."""
        p = self.procs[name]
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=10)

    def client(self) -> OperatorClient:
        tls = self._tls("operator")
        return OperatorClient(ClientConfig(coordinator=f"127.0.0.1:{self.operator_proxy.port}",
                                           tls=TlsConfig(ca=Path(tls["ca"]), cert=Path(tls["cert"]), key=Path(tls["key"]))))

    def registrations(self, party: str) -> int:
        """How often ``party`` registered or reconnected, by the coordinator's log (over its restarts)."""
        log = self.log("coordinator")
        return log.count(f"party {party} registered") + log.count(f"party {party} reconnected")

    def intersection(self, party: str, job_id: str) -> list[str]:
        return list(pd.read_csv(self.workdir / party / "jobs" / job_id / "intersection.csv", dtype=str)["id"])

    def stop(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.proxy.close()
        self.operator_proxy.close()


def wait_for(check: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out after {timeout_s:.0f} s waiting for {what}"
        time.sleep(interval_s)


@pytest.fixture(scope="module")
def fault_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, set[str]]:
    """The bank's 3,000 enterprises (with a label) and the platform's 3,000, 2,000 of them in common."""
    d = tmp_path_factory.mktemp("fault-data")
    rng = np.random.default_rng(13)
    ids = [f"E{i:06d}" for i in range(4000)]
    bank, platform = ids[:3000], ids[1000:]
    g = pd.DataFrame({"id": bank, "x1": rng.normal(size=3000).round(4), "x2": rng.normal(size=3000).round(4),
                      "y": rng.integers(0, 2, size=3000)})
    h = pd.DataFrame({"id": platform, "x3": rng.normal(size=3000).round(4), "x4": rng.normal(size=3000).round(4)})
    h = h.sample(frac=1.0, random_state=3)
    gp, hp = d / "bank.csv", d / "platform.csv"
    g.to_csv(gp, index=False)
    h.to_csv(hp, index=False)
    return gp, hp, set(bank) & set(platform)


#: Liveness settings of the suite's coordinator: heartbeats every 0.5 s, a party gone for 4 s fails its jobs.
GRACE_S = 4.0
HEARTBEAT_S = 0.5


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, fault_data: tuple[Path, Path, set[str]]) -> Iterator[FaultCluster]:
    gp, hp, _ = fault_data
    policy = {"auto_approve": True, "min_intersection": 10, "allowed_purposes": [PURPOSE], "min_key_bits": 1024}
    c = FaultCluster(tmp_path_factory.mktemp("faults"),
                     {"bank": {"d": {"path": str(gp), "id_column": "id", "label_column": "y"}},
                      "platform": {"d": {"path": str(hp), "id_column": "id"}}},
                     {"party_grace_s": GRACE_S, "heartbeat_s": HEARTBEAT_S},
                     {"bank": {**policy, "auto_approve": False}, "platform": policy})  # the bank's operator approves
    try:
        c.start_coordinator()
        for party in ("bank", "platform"):
            c.start_party(party)
        wait_for(lambda: c.registrations("bank") and c.registrations("platform"), 60, "both parties to register")
        yield c
    finally:
        c.stop()
