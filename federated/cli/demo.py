"""``fedcredit demo``: the whole flow on one machine, as three separate processes.

It makes development certificates, writes a config per node, starts the
coordinator, the platform's node and the bank's node as separate OS
processes that talk only through mutual-TLS gRPC on localhost, submits a
train job, follows it, and prints the joint model's test metrics next to two
references only a demo can build: the bank's features alone, a centralized
model on the joined data with the pipeline's own preprocessing (in reality
nobody holds that), and plain sklearn on the joined data.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from ..security.certs import init_certs
from ..config import ClientConfig, DatasetConfig, JobSpec, load_config, parse_config
from ..node.data import load_dataset
from ..errors import ConfigError, DataError, TransportError
from ..plan import plan_job
from ..transcript import transcript_name
from ..reference import DEFAULT_CLIP, DEFAULT_L2, align_ids, reference_metrics
from ..node.results import merge_views
from ..node.workdir import NodeStore

__all__ = ["DemoOptions", "run_demo", "reference_models", "Cluster"]



def _example_data() -> Path:
    """The example data: the installed package ``fedcredit.runtime.example_data`` (a wheel carries it), else the checkout's."""
    try:
        from importlib.resources import files

        installed = Path(str(files("fedcredit.runtime.example_data")))
        if (installed / "default_credit_hetero_guest.csv").is_file():
            return installed
    except (ImportError, TypeError):  # not installed, or not as a regular package
        pass
    return Path(__file__).resolve().parents[2] / "examples" / "data"


EXAMPLES = _example_data()
PURPOSE = "financing.credit_risk_model"


@dataclass
class DemoOptions:
    guest_data: Path | None = None
    host_data: Path | None = None
    id_column: str = "id"
    label_column: str = "y"
    workdir: Path = Path("fedcredit-demo")
    json_out: Path | None = None
    key_bits: int = 2048
    max_epochs: int | None = None  # None: the job default
    batch_size: int | str = "auto"
    learning_rate: float | None = None
    seed: int = 42
    test_fraction: float = 0.2
    guest: str = "bank"
    host: str = "platform"
    consent_registry: Path | None = None  # default: the example registry when the example data is used
    mode: str = "paillier"  # or ckks
    scorecard: bool = False  # #15: also a scorecard job, its IV table and AUC/KS beside the plain LR's
    share_iv: bool = True  # the scorecard job shares the platform's IV with the bank


def _write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@dataclass
class Cluster:
    """A coordinator and party nodes as child processes (used by the demo and the integration tests)."""

    workdir: Path
    parties: dict[str, dict[str, DatasetConfig]]  # party -> dataset name -> config
    policies: dict[str, dict[str, Any]] = field(default_factory=dict)  # party -> policy; default: auto-approve
    party_settings: dict[str, dict[str, Any]] = field(default_factory=dict)  # party -> extra config keys (e.g. unbalanced)
    coordinator_settings: dict[str, Any] = field(default_factory=dict)  # extra coordinator config keys (e.g. relay)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    port: int = 0
    min_key_bits: int = 1024  # the default policy's minimum; integration tests use 1024-bit keys, the demo 2048


    @property
    def certs(self) -> Path:
        return self.workdir / "certs"

    def _tls(self, name: str) -> dict[str, str]:
        d = self.certs / name
        return {"ca": str(self.certs / "ca.crt"), "cert": str(d / "tls.crt"), "key": str(d / "tls.key")}

    def _sign(self, name: str) -> dict[str, str]:
        d = self.certs / name
        return {"cert": str(d / "sign.crt"), "key": str(d / "sign.key")}

    def party_config_path(self, party: str) -> Path:
        return self.workdir / f"{party}.yaml"

    def party_store(self, party: str) -> NodeStore:
        """A party's files, as its node lays them out in its workdir."""
        return NodeStore(self.workdir / party)

    def party_result(self, party: str, job_id: str) -> dict[str, Any]:
        """A party's own result of a job, from its workdir (it never leaves the party's node)."""
        path = self.party_store(party).job(job_id).result
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}

    def job_result(self, job_id: str, coordinator_view: str = "{}") -> dict[str, Any]:
        """What a demo or a benchmark reports: every party's own result and the coordinator's run metadata.

        Only a simulation holding every node's files can build this; no role sees it all."""
        out: dict[str, Any] = json.loads(coordinator_view or "{}")
        for p in self.parties:
            out = merge_views(out, self.party_result(p, job_id))
        return out

    def transcripts(self, job_id: str) -> list[Path]:
        """The transcript files of a job: the coordinator's and each party's."""
        found = [self.workdir / "transcripts" / transcript_name(job_id, "coordinator")]
        found += [self.party_store(p).transcript(job_id, p) for p in self.parties]
        return [f for f in found if f.exists()]

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = open(self.workdir / "logs" / f"{name}.log", "ab")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        proc = subprocess.Popen([sys.executable, "-m", "fedcredit.runtime.cli", *args], stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
        self.procs[name] = proc
        return proc

    def start(self, timeout_s: float = 60.0) -> None:
        (self.workdir / "logs").mkdir(parents=True, exist_ok=True)
        init_certs(self.certs, list(self.parties), overwrite=True)
        port_file = self.workdir / "coordinator.port"
        port_file.unlink(missing_ok=True)
        coord_cfg = _write_yaml(self.workdir / "coordinator.yaml", {
            "name": "coordinator", "listen": "127.0.0.1:0", "port_file": str(port_file),
            "database": str(self.workdir / "coordinator.sqlite"), "tls": self._tls("coordinator"),
            "sign": self._sign("coordinator"), "transcripts": str(self.workdir / "transcripts"),
            "parties": list(self.parties), "operators": ["operator"], **self.coordinator_settings,
        })
        coord = self._spawn("coordinator", ["coordinator", "serve", "--config", str(coord_cfg)])
        deadline = time.monotonic() + timeout_s
        while not port_file.exists():
            if coord.poll() is not None:
                raise TransportError(f"the coordinator exited early (code {coord.returncode}); see {self.workdir / 'logs' / 'coordinator.log'}")
            if time.monotonic() > deadline:
                raise TransportError("the coordinator did not start in time")
            time.sleep(0.1)
        self.port = int(port_file.read_text())
        for party, datasets in self.parties.items():
            policy = self.policies.get(party, {"auto_approve": True, "min_intersection": 10,
                                               "allowed_purposes": ["financing.credit_risk_model"],
                                               "min_key_bits": self.min_key_bits})
            cfg = _write_yaml(self.party_config_path(party), {
                "name": party, "coordinator": f"127.0.0.1:{self.port}", "tls": self._tls(party),
                "seal": {"cert": str(self.certs / party / "seal.crt"), "key": str(self.certs / party / "seal.key")},
                "sign": self._sign(party),
                "workdir": str(self.workdir / party),
                "datasets": {k: json.loads(v.model_dump_json(exclude_defaults=False)) for k, v in datasets.items()},
                "policy": policy,
                **self.party_settings.get(party, {}),
            })
            self._spawn(party, ["party", "serve", "--config", str(cfg)])
        _write_yaml(self.workdir / "client.yaml", {"coordinator": f"127.0.0.1:{self.port}", "tls": self._tls("operator")})

    def client_config(self) -> ClientConfig:
        return load_config(ClientConfig, self.workdir / "client.yaml")

    def kill(self, name: str) -> None:
        """SIGKILL one process (for resume tests): no cleanup, like a power cut."""
        p = self.procs[name]
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=10)

    def restart(self, name: str) -> None:
        """Start a party node again with the same config."""
        self._spawn(name, ["party", "serve", "--config", str(self.party_config_path(name))])

    def check_alive(self) -> None:
        for name, p in self.procs.items():
            if p.poll() is not None:
                raise TransportError(f"process {name} exited with code {p.returncode}; see {self.workdir / 'logs' / (name + '.log')}")

    def stop(self, timeout_s: float = 10.0) -> dict[str, int | None]:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        codes: dict[str, int | None] = {}
        deadline = time.monotonic() + timeout_s
        for name, p in self.procs.items():
            try:
                codes[name] = p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                codes[name] = p.wait()
        return codes

    def __enter__(self) -> "Cluster":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def reference_models(guest_cfg: DatasetConfig, host_cfg: DatasetConfig, seed: int, test_fraction: float,
                     purpose: str = PURPOSE, on: dt.date | None = None, *, clip: float | None = DEFAULT_CLIP,
                     l2: float = DEFAULT_L2) -> dict[str, Any]:
    """sklearn references on the very rows and split the job uses (demo reference only).

    ``centralized`` and ``guest_only`` apply exactly the federated pipeline's
    preprocessing (each party's ``Standardizer`` with the job's ``clip``, fitted
    on its training rows) and the job's L2 strength (the protocol's ``l2`` is on
    the mean loss, so sklearn's ``C = 1 / (l2 * n_train)``; lbfgs leaves the
    intercept unpenalized like the protocol), so the gap to the joint model
    measures the protocol only. ``plain_sklearn`` is sklearn with ordinary
    preprocessing (``StandardScaler``, no clipping, default C). See
    :mod:`fedcredit.runtime.reference`.
    """
    from ..node.consent import apply_consent, load_consent_registry

    g = load_dataset(guest_cfg, require_label=True)
    h = load_dataset(host_cfg, require_label=False)
    h_ids: list[str | None] = list(h.ids)
    if host_cfg.consent_registry is not None:
        keep = apply_consent(h.ids, load_consent_registry(host_cfg.consent_registry), purpose, on or dt.date.today()).keep
        h_ids = [i if k else None for i, k in zip(h.ids, keep)]
    g_rows, h_rows, aligned = align_ids(g.ids, h_ids)
    return reference_metrics(g.features[g_rows], h.features[h_rows], g.labels[g_rows], aligned,
                             seed=seed, test_fraction=test_fraction, clip=clip, l2=l2)


def _default(path: Path | None, name: str) -> Path:
    if path is not None:
        return path.resolve()
    p = EXAMPLES / name
    if not p.exists():
        raise ConfigError(f"no --guest-data/--host-data given and the example data {p} is missing")
    return p


def run_demo(opts: DemoOptions, console: Console) -> int:
    from .client import OperatorClient
    from .demo_scoring import score_held_out, scoring_settings
    from .progress import follow_job

    t0 = time.monotonic()
    guest_path = _default(opts.guest_data, "default_credit_hetero_guest.csv")
    host_path = _default(opts.host_data, "default_credit_hetero_host.csv")
    for p in (guest_path, host_path):
        if not p.exists():
            raise DataError(f"{p}: file not found")
    workdir = opts.workdir.resolve()
    consent = opts.consent_registry
    if consent is None and opts.host_data is None:
        consent = EXAMPLES / "default_credit_platform_consent.csv"
    guest_ds = DatasetConfig(path=guest_path, id_column=opts.id_column, label_column=opts.label_column)
    host_ds = DatasetConfig(path=host_path, id_column=opts.id_column, consent_registry=consent.resolve() if consent else None)
    # Validate both files up front, so a bad input fails here with one clear message.
    g_cols = load_dataset(guest_ds, require_label=True).feature_names
    h_cols = load_dataset(host_ds, require_label=False).feature_names

    training: dict[str, Any] = {"engine": opts.mode, "key_bits": opts.key_bits,
                                "batch_size": opts.batch_size if opts.batch_size == "auto" else int(opts.batch_size)}
    if opts.max_epochs is not None:
        training["max_epochs"] = opts.max_epochs
    if opts.learning_rate is not None:
        training["learning_rate"] = opts.learning_rate
    spec = parse_config(JobSpec, {
        "kind": "train", "name": "demo", "purpose": PURPOSE,
        "guest": {"party": opts.guest, "dataset": "credit", "columns": g_cols},
        "host": {"party": opts.host, "dataset": "credit", "columns": h_cols},
        "training": training,
        "evaluation": {"test_fraction": opts.test_fraction}, "seed": opts.seed,
    }, source="demo job")
    _write_yaml(workdir / "job.yaml", json.loads(spec.canonical_json()))

    console.rule("[bold]fedcredit demo")
    console.print(f"guest ({opts.guest}): {guest_path}\nhost  ({opts.host}): {host_path}\nworkdir: {workdir}")
    console.print(f"mode: {opts.mode}, two-party (one key per party, secret-shared weights, no key at the coordinator)"
                  + f"; purpose: {PURPOSE}" + (f"; {opts.host}'s consent registry: {consent}" if consent else ""))
    policy = {"auto_approve": True, "min_intersection": 10, "allowed_purposes": [PURPOSE],
              "min_key_bits": min(2048, opts.key_bits)}
    bank_scoring, caller_tls = scoring_settings(workdir)  # #14: the bank's ScoreApplicant endpoint
    cluster = Cluster(workdir, {opts.guest: {"credit": guest_ds}, opts.host: {"credit": host_ds}},
                      policies={opts.guest: policy, opts.host: policy}, party_settings={opts.guest: bank_scoring})
    with cluster:
        console.print(f"started coordinator (port {cluster.port}), {opts.guest} and {opts.host} as separate processes; mTLS on 127.0.0.1")
        with OperatorClient(cluster.client_config()) as client:
            info = client.submit(spec)
            console.print(f"submitted job [bold]{info.job_id}[/]")
            info = follow_job(client, info.job_id, console=console)
            scoring = None
            if info.state == "succeeded":  # #14: the held-out applicants through a score job and the online RPC
                console.print("scoring the held-out applicants: a private score job, then the online ScoreApplicant RPC")
                scoring = score_held_out(cluster, client, spec, info.job_id, opts.guest, guest_path, opts.id_column,
                                         opts.label_column, caller_tls)
            card_info = None
            if opts.scorecard and info.state == "succeeded":
                from .demo_scorecard import run_scorecard_job, scorecard_spec

                card_spec = scorecard_spec(spec, share_iv=opts.share_iv)
                card_info = run_scorecard_job(client, card_spec, console)
        codes = cluster.stop()
    if card_info is not None and card_info.state != "succeeded":
        console.print(f"[bold red]scorecard job {card_info.state}[/]: {card_info.error}\nlogs: {workdir / 'logs'}")
        return 1
    result = cluster.job_result(info.job_id, info.result_json)
    if info.state != "succeeded":
        console.print(f"[bold red]job {info.state}[/]: {info.error}\nlogs: {workdir / 'logs'}")
        return 1

    from ..audit import render_report, verify_transcripts

    transcripts = cluster.transcripts(info.job_id)
    ca_pem = (cluster.certs / "ca.crt").read_bytes()
    verification = verify_transcripts(transcripts, ca_cert_pem=ca_pem)
    report = workdir / "audit" / f"{info.job_id}.html"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(render_report(transcripts, ca_cert_pem=ca_pem, fmt="html"), encoding="utf-8")
    excluded = _consent_excluded(transcripts)

    ref = reference_models(guest_ds, host_ds, opts.seed, opts.test_fraction, clip=spec.training.clip, l2=spec.training.l2)
    joint = result["metrics"]["joint"]
    total = time.monotonic() - t0
    table = Table(title=f"Test metrics on {ref['intersection_size'] - int(result['training']['n_train'])} held-out rows "
                        f"(intersection {result['psi']['intersection_size']})")
    table.add_column("model")
    table.add_column("AUC", justify="right")
    table.add_column("KS", justify="right")
    table.add_column("who can build it")
    table.add_row(f"{opts.guest} only (its own features)", f"{ref['guest_only']['auc']:.4f}", f"{ref['guest_only']['ks']:.4f}", f"{opts.guest} alone")
    table.add_row("joint federated (fedcredit)", f"{joint['auc']:.4f}", f"{joint['ks']:.4f}", f"{opts.guest} + {opts.host}, nothing raw shared")
    table.add_row("centralized sklearn, same preprocessing (reference)", f"{ref['centralized']['auc']:.4f}",
                  f"{ref['centralized']['ks']:.4f}", "nobody (demo only)")
    table.add_row("plain sklearn (StandardScaler, no clipping)", f"{ref['plain_sklearn']['auc']:.4f}",
                  f"{ref['plain_sklearn']['ks']:.4f}", "nobody (demo only)")
    console.print(table)
    from .demo_evaluation import write_demo_evaluation

    evaluation = write_demo_evaluation(report.parent / "evaluation_report.html", guest_files=cluster.party_store(opts.guest).job(info.job_id),
                                       host_files=cluster.party_store(opts.host).job(info.job_id), guest_ds=guest_ds, host_ds=host_ds,
                                       spec=spec, job_id=info.job_id, guest=opts.guest, host=opts.host, joint_auc=joint.get("auc"))
    gap = ref["centralized"]["auc"] - joint["auc"]
    gap_plain = ref["plain_sklearn"]["auc"] - joint["auc"]
    console.print(f"joint vs centralized AUC gap: {gap:+.4f} (vs plain sklearn {gap_plain:+.4f})   epochs: {result['training']['epochs']}   "
                  f"losses: {', '.join(f'{v:.4f}' for v in result['training']['losses'])}")
    out = {
        "job_id": info.job_id,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()},
        "data": {"guest": str(guest_path), "host": str(host_path)},
        "psi": {"intersection_size": result["psi"]["intersection_size"]},
        "metrics": {"joint": joint, "guest_only": ref["guest_only"], "centralized": ref["centralized"],
                    "plain_sklearn": ref["plain_sklearn"], "auc_gap_vs_centralized": gap, "auc_gap_vs_plain_sklearn": gap_plain,
                    "reference_settings": ref["settings"]},
        "training": result["training"],
        "bytes": result.get("bytes", {}),
        "seconds": {"total": round(total, 2), **{k: v for k, v in result.get("seconds", {}).items()}},
        "process_exit_codes": codes,
        "consent": {"excluded_by_host": excluded},
        "audit": {"verified": verification.ok, "problems": [p.message for p in verification.problems]},
        "artifacts": {"transcripts": [str(t) for t in transcripts], "audit_report": str(report),
                      "evaluation_report": str(evaluation) if isinstance(evaluation, Path) else None,
                      "model_package": {p: str(cluster.party_store(p).model(info.job_id).folder) for p in (opts.guest, opts.host)}},
        "scoring": scoring,
    }
    if card_info is not None:
        from .demo_scorecard import scorecard_section

        section = scorecard_section(cluster, card_info.job_id, card_spec, guest_ds, host_ds, joint, console)
        out["metrics"]["scorecard"] = section["metrics"]
        out.update({k: section[k] for k in ("iv", "parties", "scorecard")})
    if scoring and "auc" in scoring:
        console.print(f"scoring: {scoring['rows_scored']} held-out applicants scored (private score job), AUC {scoring['auc']:.4f} "
                      f"(training: {joint['auc']:.4f}); online ScoreApplicant p99 {scoring.get('p99_ms')} ms")
    if excluded is not None:
        console.print(f"consent: {opts.host} excluded {excluded} enterprises without a valid consent for {PURPOSE} "
                      f"(only {opts.host} learns this number; it is in {opts.host}'s own transcript)")
    status = "[bold green]verified[/]" if verification.ok else f"[bold red]NOT verified[/] ({len(verification.problems)} problems)"
    console.print(f"transcripts ({len(transcripts)}): {status}; audit report: {report}")
    console.print(f"evaluation report (ROC, KS, lift, PSI, calibration; joint vs {opts.guest} only): {evaluation}")
    console.print(f"artifacts: models in {workdir / opts.guest / 'jobs' / info.job_id} and {workdir / opts.host / 'jobs' / info.job_id}; "
                  f"logs in {workdir / 'logs'}; coordinator state {workdir / 'coordinator.sqlite'}")
    if opts.json_out:
        opts.json_out.parent.mkdir(parents=True, exist_ok=True)
        opts.json_out.write_text(json.dumps(out, indent=2), encoding="utf-8")
        console.print(f"results JSON: {opts.json_out}")
    console.print(f"total {total:.1f}s; all processes stopped (exit codes {codes})")
    return 0 if verification.ok else 1


def _consent_excluded(transcripts: list[Path]) -> int | None:
    for t in transcripts:
        for line in t.read_text(encoding="utf-8").splitlines():
            rec = json.loads(line)
            if rec.get("kind") == "event" and rec["body"].get("event") == "consent":
                return int(rec["body"]["excluded"])
    return None


def run_psi_demo(left: Path, right: Path, *, id_column: str, protocol: str, reveal: str, dedupe: bool, workdir: Path,
                 json_out: Path | None, console: Console) -> int:
    """PSI alone between a bank (left, guest) and a platform (right, host) as separate processes over mTLS."""
    from .client import OperatorClient
    from .progress import follow_job

    if protocol not in ("auto", "ecdh", "ot"):
        raise ConfigError(f"--protocol {protocol!r} is not available (choose: auto, ecdh, ot)")
    for p in (left, right):
        if not p.exists():
            raise DataError(f"{p}: file not found")
    t0 = time.monotonic()
    workdir = workdir.resolve()
    ds = {"bank": DatasetConfig(path=left.resolve(), id_column=id_column, duplicates="dedupe" if dedupe else "reject"),
          "platform": DatasetConfig(path=right.resolve(), id_column=id_column, duplicates="dedupe" if dedupe else "reject")}
    spec = parse_config(JobSpec, {"kind": "psi", "name": "psi-demo", "purpose": PURPOSE,
                                  "guest": {"party": "bank", "dataset": "ids"}, "host": {"party": "platform", "dataset": "ids"},
                                  "psi": {"reveal": reveal, "protocol": protocol}}, source="psi demo")
    psi_protocol = plan_job(spec).psi.protocol
    console.rule(f"[bold]fedcredit PSI demo ({psi_protocol}, reveal {reveal})")
    cluster = Cluster(workdir, {"bank": {"ids": ds["bank"]}, "platform": {"ids": ds["platform"]}},
                      policies={p: {"auto_approve": True, "min_intersection": 0, "allowed_purposes": [PURPOSE]} for p in ("bank", "platform")})
    with cluster:
        with OperatorClient(cluster.client_config()) as client:
            info = client.submit(spec)
            t_submit = time.monotonic()
            info = follow_job(client, info.job_id, console=console)
            t_done = time.monotonic()
    result = cluster.job_result(info.job_id, info.result_json)
    if info.state != "succeeded":
        console.print(f"[bold red]job {info.state}[/]: {info.error}\nlogs: {workdir / 'logs'}")
        return 1
    out_csv = workdir / "intersection.csv"
    src = cluster.party_store("bank").job(info.job_id).intersection
    if src.exists():
        out_csv.write_text(src.read_text(encoding="utf-8"), encoding="utf-8")
    size = result["psi"].get("intersection_size")
    out = {
        "job_id": info.job_id, "protocol": psi_protocol, "reveal": reveal,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "intersection_size": size,
        "intersection_csv": str(out_csv) if src.exists() else None,
        # job: the coordinator's own clock, from submission to the job's end (the client polls
        # every 0.5 s, so its wait would add up to half a second); job_polled: what the client saw.
        "seconds": {"total": round(time.monotonic() - t0, 2),
                    "job": round((info.updated_unix_ms - info.created_unix_ms) / 1000, 3),
                    "job_polled": round(t_done - t_submit, 2),
                    "psi": result["psi"].get("seconds", {})},
        "bytes_sent": {k: v["sent"] for k, v in result.get("bytes", {}).items()},
        "peak_rss_mb": result.get("peak_rss_mb", {}),
        "duplicates_removed": result["psi"].get("duplicates_removed", {}),
    }
    console.print(f"intersection: {size}" + (f" -> {out_csv}" if src.exists() else " (count only)"))
    console.print(f"seconds: job {out['seconds']['job']}, total {out['seconds']['total']}; bytes sent {out['bytes_sent']}; "
                  f"peak RSS MB {out['peak_rss_mb']}")
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(out, indent=2), encoding="utf-8")
        console.print(f"results JSON: {json_out}")
    return 0
