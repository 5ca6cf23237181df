"""The ``fedcredit`` command line: certs, coordinator, party, job, demo."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console

from ..errors import ConfigError, FedCreditError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="fedcredit: privacy-preserving joint credit modeling (PSI + vertical LR over mTLS gRPC).")
certs_app = typer.Typer(no_args_is_help=True, help="Certificates: all in one folder (init), or a CA that signs each node's request "
                        "(ca, request, sign) so private keys never leave their node.")
coord_app = typer.Typer(no_args_is_help=True, help="Run the coordinator.")
party_app = typer.Typer(no_args_is_help=True, help="Run a party node (dials out only).")
job_app = typer.Typer(no_args_is_help=True, help="Submit and inspect jobs (operator); approve or reject them (at a party).")
audit_app = typer.Typer(no_args_is_help=True, help="Verify transcripts and write compliance reports.")
app.add_typer(certs_app, name="certs")
app.add_typer(coord_app, name="coordinator")
app.add_typer(party_app, name="party")
app.add_typer(job_app, name="job")
app.add_typer(audit_app, name="audit")
model_app = typer.Typer(no_args_is_help=True, help="The trained models this party keeps: its part of each, and their joint spec.")
app.add_typer(model_app, name="model")

err_console = Console(stderr=True)
console = Console()

CLIENT_CONFIG_HELP = "Client config (coordinator address and operator certificate). Default: $FEDCREDIT_CLIENT_CONFIG or ./client.yaml"


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _batch_size(value: str) -> str:
    """``--batch-size``: ``auto`` or a positive whole number; anything else is a usage error (exit 2) naming the option."""
    if value != "auto" and not (value.isdigit() and int(value) > 0):
        raise typer.BadParameter(f"{value!r} is not a positive whole number or 'auto'")
    return value


def _one_of(*allowed: str) -> Any:
    """An option callback accepting only ``allowed``: anything else is a usage error (exit 2) naming the option."""

    def check(value: str) -> str:
        if value not in allowed:
            raise typer.BadParameter(f"{value!r} is not available (choose: {', '.join(allowed)})")
        return value

    return check


def _fail(exc: FedCreditError) -> None:
    err_console.print(f"[bold red]error[/] [{exc.code}] {exc.message}", highlight=False, soft_wrap=True)
    raise typer.Exit(2 if exc.code in ("CONFIG", "DATA", "BUDGET", "CERT_EXPIRED", "CERT_NOT_YET_VALID") else 1)


def _run_until_signal(stop: Any) -> threading.Event:
    done = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        logging.getLogger("fedcredit").info("signal %d: shutting down", signum)
        stop()
        done.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return done


def _interrupt_on_sigterm() -> None:
    """SIGTERM raises KeyboardInterrupt, as Ctrl-C does, so a demo's ``with Cluster(...)`` stops its child processes
    (they run in their own session: a signal to the demo alone would orphan them) and the command ends without a traceback."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)


@certs_app.command("init")
def certs_init(
    directory: Path = typer.Argument(..., help="Folder to create the CA and node certificates in."),
    parties: str = typer.Option(..., "--parties", help="Comma-separated party names, e.g. bank,platform."),
    coordinator: str = typer.Option("coordinator", help="The coordinator's node name."),
    operators: str = typer.Option("operator", help="Comma-separated operator names (job submitters)."),
    hosts: str = typer.Option("localhost,127.0.0.1", help="The coordinator's DNS names / IPs (its certificate's SAN; only it serves)."),
    days: int = typer.Option(365, help="Validity in days."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing CA."),
) -> None:
    """Create a development CA and certificates for the coordinator, parties and operators."""
    from ..security.certs import init_certs

    try:
        layout = init_certs(directory, [p.strip() for p in parties.split(",") if p.strip()], coordinator=coordinator,
                            operators=[o.strip() for o in operators.split(",") if o.strip()],
                            hosts=[h.strip() for h in hosts.split(",") if h.strip()], days=days, overwrite=force)
    except FedCreditError as exc:
        _fail(exc)
    console.print(f"CA: {layout.ca_cert}")
    for name in layout.nodes:
        console.print(f"  {name}: {directory / name}")


def _names(csv: str) -> list[str]:
    return [x.strip() for x in csv.split(",") if x.strip()]


@certs_app.command("ca")
def certs_ca(
    directory: Path = typer.Argument(..., help="Folder for ca.crt and ca.key (0600)."),
    days: int = typer.Option(365, help="Validity in days; certificates it signs end no later."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing CA."),
) -> None:
    """Create only a CA, to sign nodes' requests with `certs sign`."""
    from ..security.certs import create_ca

    try:
        layout = create_ca(directory, days=days, overwrite=force)
    except FedCreditError as exc:
        _fail(exc)
    console.print(f"CA: {layout.ca_cert} (key {layout.ca_key}, keep it offline)")


@certs_app.command("request")
def certs_request(
    name: str = typer.Option(..., "--name", help="This node's name (its certificates' CN)."),
    role: str = typer.Option(..., "--role", help="party, operator or coordinator."),
    out: Path = typer.Option(..., "--out", help="This node's certificate folder: keys go to OUT/NAME/, the request to OUT/NAME.csr."),
    hosts: Optional[str] = typer.Option(None, "--hosts", help="Coordinator only: its DNS names / IPs (default localhost,127.0.0.1)."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing keys and request."),
) -> None:
    """Make this node's private keys (0600) and a certificate request; send only the .csr to the CA."""
    from ..security.certs import request_certs

    try:
        req = request_certs(out, name, role, hosts=_names(hosts) if hosts is not None else None, overwrite=force)
    except FedCreditError as exc:
        _fail(exc)
    console.print(f"keys: {req.files.tls_key.parent} (0600, stay on this machine)")
    console.print(f"request: {req.csr} (send it to the CA)")


@certs_app.command("sign")
def certs_sign(
    requests: list[Path] = typer.Argument(..., help="Request files (NAME.csr) made by `certs request`."),
    ca_dir: Path = typer.Option(..., "--ca-dir", help="Folder with ca.crt and ca.key."),
    out: Path = typer.Option(..., "--out", help="Where to write OUT/ca.crt and OUT/NAME/*.crt."),
    coordinator: str = typer.Option("coordinator", help="The coordinator's node name: the only one given a server certificate."),
    days: int = typer.Option(365, help="Validity in days (never past the CA's)."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing certificates."),
) -> None:
    """Check each request against its role's profile and issue its certificates; one bad request issues nothing."""
    from ..security.certs import cert_fingerprint, sign_requests

    try:
        signed = sign_requests(ca_dir, requests, out, coordinator=coordinator, days=days, overwrite=force)
    except FedCreditError as exc:
        _fail(exc)
    for node in signed:
        console.print(f"{node.name} ({node.issued.role}): {node.files.tls_cert.parent}")
        for what, cert in (("tls", node.issued.tls), ("sign", node.issued.sign), ("seal", node.issued.seal)):
            if cert is not None:  # what a deny-list (`revoked:` in the coordinator config) takes
                console.print(f"  {what}: serial:{cert.serial_number:x} sha256:{cert_fingerprint(cert)}", highlight=False, soft_wrap=True)


@coord_app.command("serve")
def coordinator_serve(
    config: Path = typer.Option(..., "--config", help="Coordinator YAML config."),
    log_level: str = typer.Option("INFO", help="Logging level."),
) -> None:
    """Run the coordinator until SIGTERM/SIGINT."""
    from ..config import CoordinatorConfig, load_config
    from ..coordinator.service import Coordinator

    _setup_logging(log_level)
    try:
        coord = Coordinator(load_config(CoordinatorConfig, config))
        coord.start()
    except FedCreditError as exc:
        _fail(exc)
    done = _run_until_signal(lambda: None)
    done.wait()
    coord.stop()


@party_app.command("serve")
def party_serve(
    config: Path = typer.Option(..., "--config", help="Party YAML config."),
    log_level: str = typer.Option("INFO", help="Logging level."),
) -> None:
    """Run a party node until SIGTERM/SIGINT. It dials out to the coordinator; it opens no port."""
    from ..config import PartyConfig, load_config
    from ..node.party import PartyNode

    _setup_logging(log_level)
    try:
        node = PartyNode(load_config(PartyConfig, config))
        _run_until_signal(node.stop)
        node.serve_forever()
    except FedCreditError as exc:
        _fail(exc)


def _client(client_config: Optional[Path]) -> Any:
    from .client import OperatorClient
    from ..config import ClientConfig, load_config

    path = client_config or Path(os.environ.get("FEDCREDIT_CLIENT_CONFIG", "client.yaml"))
    return OperatorClient(load_config(ClientConfig, path))


def _print_job(info: Any, as_json: bool) -> None:
    from .client import job_dict

    d = job_dict(info)
    if as_json:
        console.print_json(json.dumps(d))
        return
    console.print(f"[bold]{d['job_id']}[/]  {d['kind']}  state=[bold]{d['state']}[/]  stage={d['stage']}")
    for role, r in d["roles"].items():
        p = d["progress"].get(r["node"], {})
        prog = f"{p.get('stage', '')} {p.get('done', '')}/{p.get('total', '')}" if p else ""
        console.print(f"  {role:<12} {r['node']:<14} {r['dataset']:<16} {prog}")
    if d["result"]:
        console.print("  result: " + json.dumps(d["result"], sort_keys=True))
    if d["error"]:
        console.print(f"  [red]error: {d['error']}[/]")


@job_app.command("submit")
def job_submit(
    job_file: Path = typer.Argument(..., help="Job YAML file."),
    wait: bool = typer.Option(False, "--wait", help="Wait for the job to finish, showing progress."),
    client_config: Optional[Path] = typer.Option(None, "--client-config", help=CLIENT_CONFIG_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Submit a job; with --wait, follow it to the end (exit 1 if it fails)."""
    from ..config import load_job_spec
    from .progress import follow_job

    try:
        spec = load_job_spec(job_file)
        with _client(client_config) as client:
            info = client.submit(spec)
            if not as_json:
                console.print(f"submitted [bold]{info.job_id}[/] (spec sha256 {info.spec_sha256[:16]}…)")
            if wait:
                info = follow_job(client, info.job_id, console=None if as_json else console)
            _print_job(info, as_json)
    except FedCreditError as exc:
        _fail(exc)
    if wait and info.state != "succeeded":
        raise typer.Exit(1)


@job_app.command("status")
def job_status(
    job_id: str = typer.Argument(...),
    client_config: Optional[Path] = typer.Option(None, "--client-config", help=CLIENT_CONFIG_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show one job: state, stage, per-node progress, agreed results."""
    try:
        with _client(client_config) as client:
            _print_job(client.get(job_id), as_json)
    except FedCreditError as exc:
        _fail(exc)


@job_app.command("list")
def job_list(
    limit: int = typer.Option(20, help="How many recent jobs."),
    client_config: Optional[Path] = typer.Option(None, "--client-config", help=CLIENT_CONFIG_HELP),
) -> None:
    """List recent jobs."""
    from rich.table import Column, Table

    try:
        with _client(client_config) as client:
            jobs = client.list(limit)
    except FedCreditError as exc:
        _fail(exc)
    table = Table(Column("job", no_wrap=True, min_width=26), "kind", "state", "stage", "guest", "host")
    for j in jobs:
        roles = {r.role: r.node for r in j.roles}
        table.add_row(j.job_id, j.kind, j.state, j.stage, roles.get("guest", ""), roles.get("host", ""))
    console.print(table)


@job_app.command("cancel")
def job_cancel(
    job_id: str = typer.Argument(...),
    reason: str = typer.Option("", help="Why."),
    client_config: Optional[Path] = typer.Option(None, "--client-config", help=CLIENT_CONFIG_HELP),
) -> None:
    """Cancel a running job."""
    try:
        with _client(client_config) as client:
            _print_job(client.cancel(job_id, reason), False)
    except FedCreditError as exc:
        _fail(exc)


def _party_decision(job_id: str, config: Path, approve: bool, reason: str) -> None:
    from ..node.approval import check_policy, checked_spec, make_approval
    from ..config import PartyConfig, load_config
    from ..errors import PermissionDeniedError
    from ..node.party import PartyNode

    from fedcredit.proto.v1 import job_pb2

    cfg = load_config(PartyConfig, config)
    node = PartyNode(cfg)
    try:
        info = node._call(node.jobs.GetJob, job_pb2.GetJobRequest(job_id=job_id)).job
        spec = checked_spec(info)
        check = check_policy(spec, cfg)
        if approve and not check.ok:
            raise PermissionDeniedError("this node's policy forbids the job: " + "; ".join(check.violations))
        console.print(f"job [bold]{job_id}[/]: {spec.kind}, purpose [bold]{spec.purpose}[/], {spec.guest.party} (guest) + {spec.host.party} (host)")
        console.print(f"spec sha256 {info.spec_sha256}")
        for c in check.checks:
            console.print(f"  [green]ok[/] {c}")
        if approve:
            node.record_approved_data(info)  # the job will run on exactly this data
        approval = make_approval(node.signer, job_id, info.spec_sha256, approve, "operator", reason or ("approved by an operator" if approve else ""))
        resp = node._call(node.jobs.ApproveJob, job_pb2.ApproveJobRequest(job_id=job_id, approval=approval))
        console.print(f"{'approved' if approve else 'rejected'} as {cfg.name}; job is now [bold]{resp.job.state}[/]")
    finally:
        node.channel.close()


@job_app.command("approve")
def job_approve(
    job_id: str = typer.Argument(...),
    config: Path = typer.Option(..., "--config", help="This party's node config (its certificate signs the approval)."),
    reason: str = typer.Option("", help="A note kept with the approval."),
) -> None:
    """Approve a pending job as this party, after checking it against the party's policy."""
    try:
        _party_decision(job_id, config, True, reason)
    except FedCreditError as exc:
        _fail(exc)


@job_app.command("reject")
def job_reject(
    job_id: str = typer.Argument(...),
    config: Path = typer.Option(..., "--config", help="This party's node config."),
    reason: str = typer.Option(..., help="Why the job is rejected (shown to the submitter)."),
) -> None:
    """Reject a pending job as this party."""
    try:
        _party_decision(job_id, config, False, reason)
    except FedCreditError as exc:
        _fail(exc)


@audit_app.command("verify")
def audit_verify(
    transcripts: list[Path] = typer.Argument(..., help="Transcript files (.jsonl) of one or more nodes."),
    ca: Optional[Path] = typer.Option(None, "--ca", envvar="FEDCREDIT_CA",
                                      help="The CA certificate (trust anchor) the signers' certificates must chain to; "
                                           "required (or $FEDCREDIT_CA)."),
) -> None:
    """Check chains, signatures, sender/receiver agreement and approved specs. Exit 1 if anything fails."""
    from ..audit import verify_transcripts

    ca_pem = ca.read_bytes() if ca else None
    result = verify_transcripts(transcripts, ca_cert_pem=ca_pem)
    for w in result.warnings:
        console.print(f"[yellow]warning[/] {w}")
    for p in result.problems:
        where = f"{p.file}" + (f", record {p.record}" if p.record is not None else "")
        console.print(f"[red]{p.code}[/] {where}: {p.message}", highlight=False)
    counts = ", ".join(f"{k} {v}" for k, v in result.checked.items())
    if result.ok:
        console.print(f"[bold green]verified[/] ({counts})")
    else:
        console.print(f"[bold red]NOT verified[/]: {len(result.problems)} problem(s) ({counts})")
        raise typer.Exit(1)


@audit_app.command("report")
def audit_report(
    transcripts: list[Path] = typer.Argument(..., help="Transcript files (.jsonl)."),
    out: Path = typer.Option(..., "--out", help="Where to write the report."),
    fmt: str = typer.Option("html", "--format", help="html, md or json.", callback=_one_of("html", "md", "json")),
    ca: Optional[Path] = typer.Option(None, "--ca", envvar="FEDCREDIT_CA",
                                      help="The CA certificate (trust anchor); without it the report says NOT verified."),
) -> None:
    """Write a compliance report (who sent what to whom, disclosed aggregates, verification result)."""
    from ..audit import render_report

    text = render_report(transcripts, ca_cert_pem=ca.read_bytes() if ca else None, fmt=fmt)  # type: ignore[arg-type]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    console.print(f"report written to {out}")


report_app = typer.Typer(no_args_is_help=True, help="Model reports (the compliance report is `audit report`).")
app.add_typer(report_app, name="report")


@report_app.command("evaluation")
def report_evaluation(
    scores: Path = typer.Argument(..., help="CSV of the evaluation rows: a label column (1 = bad) and one probability-of-bad column "
                                  "per model; with a split column, its train rows give the PSI and its test rows are evaluated."),
    out: Path = typer.Option(..., "--out", help="Where to write the HTML report."),
    score_columns: str = typer.Option("score", "--scores", help="Comma-separated score columns: the model under evaluation "
                                      "first, then the models compared with it on the same rows."),
    label_column: str = typer.Option("label", "--label-column"),
    split_column: str = typer.Option("split", "--split-column", help="Optional column of train/test."),
    title: str = typer.Option("fedcredit model evaluation", "--title"),
    subject: str = typer.Option("", "--subject", help="What is evaluated, e.g. the job id."),
) -> None:
    """Write the evaluation report (ROC, KS, lift and gain, score distributions, cut-offs, PSI, calibration) as one offline HTML page."""
    from ..audit.evaluation import build_evaluation, load_scores_csv, render_evaluation
    from ..errors import DataError

    try:
        y, by_model, train = load_scores_csv(scores, label_column=label_column, score_columns=_names(score_columns) or ["score"],
                                             split_column=split_column)
        ev = build_evaluation(y, by_model, train_scores=train, title=title, subject=subject)
    except FedCreditError as exc:
        _fail(exc)
    except ValueError as exc:
        _fail(DataError(f"{scores}: {exc}"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_evaluation(ev), encoding="utf-8")
    console.print(f"evaluation report written to {out}")


demo_app = typer.Typer(help="Local demos: three processes over mTLS gRPC on localhost.")
app.add_typer(demo_app, name="demo")


@demo_app.callback(invoke_without_command=True)
def demo(
    ctx: typer.Context,
    guest_data: Optional[Path] = typer.Option(None, "--guest-data", help="Guest (bank) CSV with ids, labels and features. "
                                              "Default: examples/data/default_credit_hetero_guest.csv"),
    host_data: Optional[Path] = typer.Option(None, "--host-data", help="Host (platform) CSV with ids and features."),
    id_column: str = typer.Option("id", "--id-column"),
    label_column: str = typer.Option("y", "--label-column"),
    workdir: Path = typer.Option(Path("fedcredit-demo"), "--workdir", help="Where certificates, configs, logs and models go."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the results as JSON here."),
    key_bits: int = typer.Option(2048, "--key-bits", help="Paillier key size (1024 only for quick tries)."),
    max_epochs: Optional[int] = typer.Option(None, "--max-epochs", help="Default: the job default (4)."),
    batch_size: str = typer.Option("auto", "--batch-size", help="Rows per mini-batch, or auto.", callback=_batch_size),
    learning_rate: Optional[float] = typer.Option(None, "--learning-rate", help="Default: the job default (0.1, Nesterov)."),
    seed: int = typer.Option(42, "--seed"),
    mode: str = typer.Option("paillier", "--mode", help="paillier (default: the fast Paillier engine) or ckks (ring-LWE "
                             "ciphertexts, CKKS's, with values in coefficients).", callback=_one_of("paillier", "ckks")),
    consent_registry: Optional[Path] = typer.Option(None, "--consent-registry", help="The host's consent registry CSV "
                                                    "(default: the example one, with the example data)."),
    scorecard: bool = typer.Option(False, "--scorecard", help="Also a scorecard job: binning, WOE/IV, selection, LR, points; "
                                   "prints the IV table and the scorecard's AUC/KS beside the plain LR's."),
    share_iv: bool = typer.Option(True, "--share-iv/--no-share-iv", help="With --scorecard: the platform shares its IV per "
                                  "feature with the bank (else it keeps it)."),
) -> None:
    """The main job: coordinator + bank + platform as separate processes over mTLS gRPC; PSI, training, report.

    `fedcredit demo psi ...` runs PSI alone.
    """
    if ctx.invoked_subcommand is not None:
        return
    from .demo import DemoOptions, run_demo

    _interrupt_on_sigterm()
    opts = DemoOptions(guest_data=guest_data, host_data=host_data, id_column=id_column, label_column=label_column,
                       workdir=workdir, json_out=json_out, key_bits=key_bits, max_epochs=max_epochs,
                       batch_size=batch_size, learning_rate=learning_rate, seed=seed, consent_registry=consent_registry, mode=mode,
                       scorecard=scorecard, share_iv=share_iv)
    try:
        code = run_demo(opts, console)
    except FedCreditError as exc:
        _fail(exc)
    raise typer.Exit(code)


@demo_app.command("psi")
def demo_psi(
    left: Path = typer.Option(..., "--left", help="The guest's (bank's) CSV."),
    right: Path = typer.Option(..., "--right", help="The host's (platform's) CSV."),
    id_column: str = typer.Option("id", "--id-column"),
    protocol: str = typer.Option("auto", "--protocol", help="auto (the fastest that serves the mode), ot (OT extension) or ecdh."),
    reveal: str = typer.Option("both", "--reveal", help="both | guest | cardinality", callback=_one_of("both", "guest", "cardinality")),
    dedupe: bool = typer.Option(False, "--dedupe", help="Drop duplicate ids (and report how many) instead of refusing them."),
    workdir: Path = typer.Option(Path("fedcredit-psi"), "--workdir"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the results as JSON here."),
) -> None:
    """PSI alone, with real processes over mTLS gRPC; the intersection goes to a CSV in the workdir."""
    from .demo import run_psi_demo

    _interrupt_on_sigterm()
    try:
        code = run_psi_demo(left, right, id_column=id_column, protocol=protocol, reveal=reveal, dedupe=dedupe,
                            workdir=workdir, json_out=json_out, console=console)
    except FedCreditError as exc:
        _fail(exc)
    raise typer.Exit(code)


def _model_store(config: Path) -> Any:
    from ..config import PartyConfig, load_config
    from ..node.workdir import NodeStore

    return NodeStore(load_config(PartyConfig, config).workdir)


@model_app.command("list")
def model_list(
    config: Path = typer.Option(..., "--config", help="This party's node config (its workdir holds the models)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """The models this party keeps: id, version, its role, features, engine."""
    from rich.table import Table

    from ..node.model_package import list_packages

    try:
        models = list_packages(_model_store(config))
    except FedCreditError as exc:
        _fail(exc)
    if as_json:
        print(json.dumps([{"model_id": j.model_id, "version": j.version, "role": p.role, "features": len(p.features),
                           "engine": j.engine, "reveal_weights": j.reveal_weights} for j, p in models], indent=2))
        return
    table = Table("model", "version", "role", "features", "engine", "weights")
    for j, p in models:
        table.add_row(j.model_id, j.version[:16], p.role, str(len(p.features)), j.engine, j.reveal_weights)
    console.print(table)


@model_app.command("show")
def model_show(
    model_id: str = typer.Argument(...),
    config: Path = typer.Option(..., "--config", help="This party's node config."),
    table: bool = typer.Option(False, "--table", help="A scorecard model: print this party's scorecard table (Markdown)."),
) -> None:
    """A model's joint spec and this party's part (its weights or shares, standardizer and features), as JSON."""
    from ..node.model_package import load_package

    try:
        joint, part = load_package(_model_store(config), model_id)
    except FedCreditError as exc:
        _fail(exc)
    if table:
        if part.scorecard is None:
            _fail(ConfigError(f"model {model_id} is not a scorecard (link {joint.link})"))
        from fedcredit.protocols.binning import Scorecard, render_scorecard

        print(render_scorecard(Scorecard.from_dict(part.scorecard), part.party))
        return
    print(json.dumps({"spec": joint.to_dict(), "part": part.to_dict()}, indent=2))


@app.command("score")
def score(
    ids: list[str] = typer.Argument(..., help="Applicant ids (enterprise ids as the bank's dataset has them)."),
    address: str = typer.Option(..., "--address", help="The bank node's ScoreApplicant endpoint, host:port (its scoring_service)."),
    ca: Path = typer.Option(..., "--ca", help="The CA of the endpoint's certificate (the bank's internal PKI)."),
    cert: Path = typer.Option(..., "--cert", help="This caller's certificate (its name must be in allowed_clients)."),
    key: Path = typer.Option(..., "--key", help="This caller's private key."),
    server_name: str = typer.Option("bank-scoring", "--server-name", help="The endpoint's certificate name."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Score applicants online through the bank's node (an online score job must be running)."""
    from .scoring import score_online
    from ..config import TlsConfig

    try:
        resp = score_online(ids, address, TlsConfig(ca=ca, cert=cert, key=key), server_name=server_name)
    except FedCreditError as exc:
        _fail(exc)
    rows = [{"id": s.id, "found": s.found, "probability": s.probability if s.found else None,
             **({"points": s.points} if s.HasField("points") else {})} for s in resp.scores]  # points: a scorecard model
    if as_json:
        print(json.dumps({"model_id": resp.model_id, "model_version": resp.model_version, "scores": rows}, indent=2))
        return
    for r in rows:
        points = f", {r['points']:.1f} points" if "points" in r else ""
        console.print(f"{r['id']}  " + (f"probability of default {r['probability']:.4f}{points}" if r["found"] else "not found at the platform"))
    console.print(f"model {resp.model_id} (version {resp.model_version[:16]})")


def main() -> None:
    """Entry point. Unexpected errors print one line (set FEDCREDIT_DEBUG=1 for the traceback)."""
    try:
        app()
    except FedCreditError as exc:
        err_console.print(f"[bold red]error[/] [{exc.code}] {exc.message}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except OSError as exc:  # a full or read-only disk, a missing folder: named with its path, no traceback
        from ..errors import storage_error

        err = storage_error(exc)
        err_console.print(f"[bold red]error[/] [{err.code}] {err.message}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except Exception as exc:  # noqa: BLE001 - the last line of defence for users
        if os.environ.get("FEDCREDIT_DEBUG"):
            raise
        err_console.print(f"[bold red]internal error[/] {type(exc).__name__}: {exc} (set FEDCREDIT_DEBUG=1 for details)",
                          highlight=False, soft_wrap=True)
        sys.exit(70)


if __name__ == "__main__":
    main()
