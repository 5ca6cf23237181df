"""#12: the relay's quotas per job (bytes, messages, undelivered bytes) and its rate limit per party.

A real coordinator on port 0 and real relay endpoints over mTLS; every refusal must be RESOURCE_EXHAUSTED,
name its setting and carry no payload value. The coordinator, job and endpoint helpers are in tests/helpers.py.
"""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from fedcredit.runtime.security.certs import CertLayout
from fedcredit.runtime.config import CoordinatorConfig, RelayLimits, parse_config
from fedcredit.runtime.errors import QuotaError, RateLimitedError
from fedcredit.runtime.coordinator.relay import Mailbox, RateLimiter
from helpers import SECRET, endpoint, residual, running_job, serving_coordinator
from fedcredit.protocols.core import Role
from fedcredit.protocols.hetero_lr.two_party import TwoPartyStep


def assert_quota_refusal(exc: QuotaError, setting: str) -> None:
    assert getattr(exc, "grpc_status", None) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert setting in exc.message
    assert str(SECRET) not in exc.message and format(SECRET, "x") not in exc.message.lower()


# --------------------------------------------------------------------------
# per-job quotas, through a real coordinator
# --------------------------------------------------------------------------
def test_the_message_quota_stops_a_job_at_the_limit(tmp_path: Path, layout: CertLayout) -> None:
    with serving_coordinator(tmp_path, layout, relay={"job_max_messages": 3}) as coord:
        job = running_job(coord, layout)
        host = endpoint(coord, layout, "platform", job)
        for _ in range(3):
            host.send(TwoPartyStep.RESIDUAL, Role.GUEST, residual())
        with pytest.raises(QuotaError) as err:
            host.send(TwoPartyStep.RESIDUAL, Role.GUEST, residual())
        assert_quota_refusal(err.value, "relay.job_max_messages")
        assert "3 messages" in err.value.message
        # The job is over for both parties, with an error naming the limit.
        info = coord.jobs.get(job)
        assert info.state == "failed" and "relay.job_max_messages" in info.error
        # Another job has its own quota.
        other = running_job(coord, layout)
        endpoint(coord, layout, "platform", other).send(TwoPartyStep.RESIDUAL, Role.GUEST, residual())


def test_the_byte_quota_refuses_a_message_before_reading_it(tmp_path: Path, layout: CertLayout) -> None:
    with serving_coordinator(tmp_path, layout, relay={"job_max_bytes": 4096}) as coord:
        job = running_job(coord, layout)
        host = endpoint(coord, layout, "platform", job)
        host.send(TwoPartyStep.RESIDUAL, Role.GUEST, residual(2))  # about 1 KiB
        with pytest.raises(QuotaError) as err:
            host.send(TwoPartyStep.RESIDUAL, Role.GUEST, residual(8))  # about 4 KiB more: over
        assert_quota_refusal(err.value, "relay.job_max_bytes")
        assert coord.mailbox.charged(job) == (0, 0)  # the failed job's accounting is dropped with it
        assert coord.jobs.get(job).state == "failed"


def test_undelivered_bytes_are_bounded_per_job(tmp_path: Path, layout: CertLayout) -> None:
    """#12: the mailbox had no limit: a party could park any amount for a receiver that never takes it."""
    one = 4 * 512  # a lower bound of residual(4)'s size on the wire (a little more with its encoding and seal)
    with serving_coordinator(tmp_path, layout, relay={"job_max_pending_bytes": one + one // 2}) as coord:  # one fits, two do not
        job = running_job(coord, layout)
        host = endpoint(coord, layout, "platform", job)
        guest = endpoint(coord, layout, "bank", job)
        host.send(TwoPartyStep.RESIDUAL, Role.GUEST, residual(4))
        assert guest.recv(TwoPartyStep.RESIDUAL, Role.HOST) == residual(4)  # taken: no longer held
        host.send(TwoPartyStep.RESIDUAL, Role.GUEST, residual(4))
        with pytest.raises(QuotaError) as err:
            host.send(TwoPartyStep.RESIDUAL, Role.GUEST, residual(4))  # two held at once: over
        assert_quota_refusal(err.value, "relay.job_max_pending_bytes")
        assert coord.mailbox.pending_bytes() == 0  # the failed job's messages are dropped


# --------------------------------------------------------------------------
# per-party rate limit
# --------------------------------------------------------------------------
def test_a_party_over_its_rate_is_refused_and_the_other_is_not(tmp_path: Path, layout: CertLayout) -> None:
    with serving_coordinator(tmp_path, layout, relay={"party_messages_per_s": 0.001, "party_burst": 2}) as coord:
        job = running_job(coord, layout)
        host = endpoint(coord, layout, "platform", job, timeout_s=1.0)  # retries a rate refusal for 1 s, then gives up
        host.send(TwoPartyStep.RESIDUAL, Role.GUEST, residual())
        host.send(TwoPartyStep.RESIDUAL, Role.GUEST, residual())
        with pytest.raises(RateLimitedError) as err:
            host.send(TwoPartyStep.RESIDUAL, Role.GUEST, residual())
        assert_quota_refusal(err.value, "relay.party_messages_per_s")
        assert "platform" in err.value.message
        assert coord.jobs.get(job).state == "running"  # a rate refusal does not fail the job at the coordinator
        guest = endpoint(coord, layout, "bank", job)  # the bank has its own bucket
        guest.send(TwoPartyStep.RESIDUAL, Role.HOST, residual())


def test_a_party_slowed_by_its_rate_limit_waits_and_delivers_everything(tmp_path: Path, layout: CertLayout) -> None:
    """A rate refusal changes nothing at the relay, so the endpoint waits and sends again: no message is lost."""
    with serving_coordinator(tmp_path, layout, relay={"party_messages_per_s": 10, "party_burst": 2}) as coord:
        job = running_job(coord, layout)
        host = endpoint(coord, layout, "platform", job)
        for _ in range(6):  # 2 at once, then one per 0.1 s: the endpoint retries the refused sends
            host.send(TwoPartyStep.RESIDUAL, Role.GUEST, residual())
        guest = endpoint(coord, layout, "bank", job)
        got = [guest.recv(TwoPartyStep.RESIDUAL, Role.HOST) for _ in range(6)]
        assert all(len(m.values) == 2 for m in got)
        assert coord.jobs.get(job).state == "running"


def test_token_bucket_refills_at_its_rate_up_to_its_burst() -> None:
    now = [100.0]
    bucket = RateLimiter(rate=2.0, burst=3, clock=lambda: now[0])
    for _ in range(3):
        bucket.take("bank")
    with pytest.raises(QuotaError, match=r"2 messages per second, bursts of 3"):
        bucket.take("bank")
    bucket.take("platform")  # one bucket per party
    now[0] += 0.5  # one token back
    bucket.take("bank")
    with pytest.raises(QuotaError):
        bucket.take("bank")
    now[0] += 3600  # never more than the burst
    for _ in range(3):
        bucket.take("bank")
    with pytest.raises(QuotaError):
        bucket.take("bank")


def test_mailbox_admit_charges_nothing_it_refuses() -> None:
    box = Mailbox(limits=RelayLimits(job_max_messages=2, job_max_bytes=100))
    box.admit("j", 60)
    with pytest.raises(QuotaError, match="relay.job_max_bytes"):
        box.admit("j", 41)
    box.admit("j", 40)
    assert box.charged("j") == (2, 100)
    with pytest.raises(QuotaError, match="relay.job_max_messages"):
        box.admit("j", 0)
    box.drop_job("j")
    assert box.charged("j") == (0, 0)


def test_a_message_delivered_twice_is_retained_once_for_a_restarted_receiver() -> None:
    """A delivery broken mid-stream puts the message back; taken again, it must count once toward the retained
    bytes, or it evicts itself and a receiver restarting from its checkpoint can no longer fetch it."""
    from fedcredit.proto.v1 import envelope_pb2

    box = Mailbox(retain_bytes=1000)
    env = envelope_pb2.Envelope(job_id="j", receiver="bank", sender="platform", step="lr2.residual", sequence=0)
    data = b"x" * 600
    assert box.put(env, data)
    assert box.take("j", "bank", "platform", "lr2.residual", 0, wait_s=1) == (env, data)
    assert box.put(env, data, redeliver=True)  # the stream broke: the relay puts it back
    assert box.take("j", "bank", "platform", "lr2.residual", 0, wait_s=1) == (env, data)
    again = box.take("j", "bank", "platform", "lr2.residual", 0, wait_s=0.05)  # the receiver restarted
    assert again == (env, data)
    assert box.pending_bytes() == 0


def test_a_message_no_longer_kept_is_refused_at_once_with_its_own_code(tmp_path: Path) -> None:
    """A receiver restarting from a checkpoint older than what the relay keeps gets MESSAGE_NOT_KEPT at once (the job
    then fails with that reason), not a wait until its message timeout; a restarted coordinator still knows."""
    import time

    from fedcredit.proto.v1 import envelope_pb2
    from fedcredit.runtime.coordinator.store import Store
    from fedcredit.runtime.errors import MessageNotKeptError

    store = Store(tmp_path / "c.sqlite")
    box = Mailbox(limits=RelayLimits(retain_bytes=1000), store=store)
    envs = [envelope_pb2.Envelope(job_id="j", receiver="bank", sender="platform", step="lr2.residual", sequence=i,
                                  payload_size=600) for i in range(3)]
    for env in envs:
        assert box.put(env, b"x" * 600)
        assert box.take("j", "bank", "platform", "lr2.residual", env.sequence, wait_s=1) == (env, b"x" * 600)
    assert box.take("j", "bank", "platform", "lr2.residual", 2, wait_s=0.05) == (envs[2], b"x" * 600)  # still kept
    t0 = time.monotonic()
    with pytest.raises(MessageNotKeptError, match=r"lr2.residual#0 from platform.*relay.retain_bytes") as info:
        box.take("j", "bank", "platform", "lr2.residual", 0, wait_s=30)
    assert time.monotonic() - t0 < 5 and info.value.code == "MESSAGE_NOT_KEPT"
    assert box.take("j", "bank", "platform", "lr2.residual", 3, wait_s=0.05) is None  # not sent yet: wait, no error
    store.close()
    again = Mailbox(limits=RelayLimits(retain_bytes=1000), store=Store(tmp_path / "c.sqlite"))  # a restarted coordinator
    with pytest.raises(MessageNotKeptError):
        again.take("j", "bank", "platform", "lr2.residual", 1, wait_s=30)
    assert again.take("j", "bank", "platform", "lr2.residual", 2, wait_s=0.05) == (envs[2], b"x" * 600)
    assert again.charged("j") == (3, 1800)


def test_relayed_payloads_are_files_beside_the_database_and_come_back_after_a_restart(tmp_path: Path) -> None:
    """SQLite keeps small rows (the payload is written once, to a file, before the row commits); a restarted
    coordinator reads the payloads back, and one lost or cut short (a machine crash) is 'no longer kept', never
    delivered damaged."""
    from fedcredit.proto.v1 import envelope_pb2
    from fedcredit.runtime.coordinator.store import Store
    from fedcredit.runtime.errors import MessageNotKeptError

    store = Store(tmp_path / "c.sqlite")
    box = Mailbox(store=store)
    payload = bytes(range(256)) * 4096  # 1 MiB
    envs = [envelope_pb2.Envelope(job_id="j", receiver="bank", sender="platform", step="lr2.shares", sequence=i,
                                  payload_size=len(payload)) for i in range(3)]
    for env in envs:
        assert box.put(env, payload)
    assert box.take("j", "bank", "platform", "lr2.shares", 0, wait_s=1) == (envs[0], payload)
    store.close()
    db = sum(p.stat().st_size for p in tmp_path.glob("c.sqlite*") if p.is_file())
    blobs = sorted(p for p in (tmp_path / "c.sqlite.relay").rglob("*") if p.is_file())
    assert db < len(payload) // 4 and len(blobs) == 3 and all(p.read_bytes() == payload for p in blobs)
    victim = Store(tmp_path / "c.sqlite")._blob(("j", "bank", "platform", "lr2.shares", 2))
    victim.write_bytes(payload[:1000])  # cut short
    again = Mailbox(store=Store(tmp_path / "c.sqlite"))
    assert again.take("j", "bank", "platform", "lr2.shares", 0, wait_s=0.05) == (envs[0], payload)  # delivered, kept
    assert again.take("j", "bank", "platform", "lr2.shares", 1, wait_s=0.05) == (envs[1], payload)  # pending
    with pytest.raises(MessageNotKeptError):
        again.take("j", "bank", "platform", "lr2.shares", 2, wait_s=5)
    again.drop_job("j")
    assert not (tmp_path / "c.sqlite.relay" / victim.parent.name).exists()


def test_default_limits_leave_a_wide_margin_over_the_demo_job() -> None:
    """The defaults are sized from the coordinator transcripts of real `make demo` runs (default_credit, 4 epochs):
    1,433 messages; 127.4 MB (Paillier) and 2.80 GB (CKKS); at most 43 messages in any second from one party
    (7 in any 100 ms) across the recorded jobs; no more than a few MB held for a receiver at once."""
    limits = RelayLimits()
    assert limits.job_max_messages >= 50 * 1_433
    assert limits.job_max_bytes >= 5 * 2_801_929_516
    assert limits.party_burst + limits.party_messages_per_s >= 10 * 43
    assert limits.party_messages_per_s >= 3 * 33  # the fastest sustained rate seen (small test jobs)
    assert limits.job_max_pending_bytes >= 16 * (64 << 20)  # sixteen of the largest message the relay accepts


def test_relay_limits_are_validated_in_the_config(tmp_path: Path) -> None:
    from fedcredit.runtime.errors import ConfigError

    base = {"tls": {"ca": "a", "cert": "b", "key": "c"}, "sign": {"cert": "d", "key": "e"}, "parties": ["bank"]}
    assert parse_config(CoordinatorConfig, base, source="c").relay == RelayLimits()
    with pytest.raises(ConfigError, match="relay.party_messages_per_s"):
        parse_config(CoordinatorConfig, {**base, "relay": {"party_messages_per_s": 0}}, source="c")
    with pytest.raises(ConfigError, match="relay.max_bytes"):
        parse_config(CoordinatorConfig, {**base, "relay": {"max_bytes": 1}}, source="c")
