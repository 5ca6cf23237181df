"""A party's approval racing the other party's rejection: the decision is refused cleanly, nothing is lost.

Found by the integration suite: the platform rejected a job while the bank's approval was being recorded; the
bank's decision went to the transcript the rejection had just closed, the coordinator answered INTERNAL, and the
bank's node stopped. Decisions and job endings are now serialized in the coordinator.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from fedcredit.runtime.node.approval import make_approval
from fedcredit.runtime.audit import verify_transcripts
from fedcredit.runtime.security.certs import CertLayout
from fedcredit.runtime.errors import ConflictError
from helpers import PARTIES, job_spec, signer, serving_coordinator


def test_an_approval_racing_a_rejection_is_refused_as_a_conflict(tmp_path: Path, layout: CertLayout,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    with serving_coordinator(tmp_path, layout) as coord:
        jobs = coord.jobs
        job_id = jobs.submit(job_spec("psi")).job_id
        sha = jobs.get(job_id).spec_sha256
        idents = {}
        for party in PARTIES:
            jobs.set_sign_key(party, layout.node(party).sign_cert.read_bytes())
            idents[party] = signer(layout, party)

        # The bank's approval is slowed right after its checks (while it is recorded), so that, without
        # serialization, the platform's rejection ends the job in between.
        real_add = jobs.store.add_approval
        in_bank = threading.Event()

        def slow_add(job: str, node: str, *args: object) -> None:
            if node == "bank":
                in_bank.set()
                time.sleep(0.5)
            real_add(job, node, *args)

        monkeypatch.setattr(jobs.store, "add_approval", slow_add)
        errors: list[BaseException] = []

        def bank() -> None:
            try:
                jobs.approve(job_id, "bank", make_approval(idents["bank"], job_id, sha, True, "policy"))
            except BaseException as exc:  # noqa: BLE001 - the test inspects it
                errors.append(exc)

        t = threading.Thread(target=bank)
        t.start()
        assert in_bank.wait(5)
        rejected = jobs.approve(job_id, "platform", make_approval(idents["platform"], job_id, sha, False, "policy", "no"))
        t.join(10)
        assert rejected.state == "rejected"
        assert errors == []  # the bank's approval was recorded before the rejection ended the job
        with pytest.raises(ConflictError, match="approvals are closed"):  # and any later decision is a clean conflict
            jobs.approve(job_id, "bank", make_approval(idents["bank"], job_id, sha, True, "policy"))
        result = verify_transcripts(sorted((tmp_path / "transcripts").glob(f"{job_id}.*.jsonl")),
                                    ca_cert_pem=layout.ca_cert.read_bytes())
        assert result.ok, result.problems
        records = [json.loads(line) for line in (tmp_path / "transcripts" / f"{job_id}.coordinator.jsonl").read_text().splitlines()]
        names = [r["body"].get("event") for r in records]
        assert names.index("approved") < names.index("rejected") < names.index("finished")
