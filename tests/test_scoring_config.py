"""Score job specs, their plan, and the policy checks a node applies to them (#14)."""

from __future__ import annotations

import pytest

from fedcredit.protocols.scoring import ScoreStep, ScoringMode
from fedcredit.runtime.config import PartyConfig, parse_config
from fedcredit.runtime.errors import ConfigError
from fedcredit.runtime.node.approval import check_policy
from fedcredit.runtime.plan import plan_job
from fedcredit.runtime.security.sealing import SealStep
from helpers import job_spec

PARTY = {"name": "bank", "coordinator": "127.0.0.1:1", "tls": {"ca": "a", "cert": "b", "key": "c"}, "seal": {"cert": "s", "key": "k"},
         "sign": {"cert": "g", "key": "h"}, "datasets": {"d": {"path": "d.csv", "label_column": "y"}}}


def test_a_score_job_plans_scoring_only():
    plan = plan_job(job_spec("score", scoring={"model": "job-1", "max_queries": 5}))
    assert plan.kind == "score" and plan.train is None and plan.score is not None
    assert plan.score.model_id == "job-1" and plan.score.params.mode is ScoringMode.PRIVATE and plan.score.params.max_queries == 5
    assert plan.steps == (ScoreStep, SealStep) and not plan.can_resume(None)
    assert plan.guest.needs_features and plan.host.needs_features and not plan.guest.needs_labels
    online = plan_job(job_spec("score", scoring={"model": "job-1", "online": True, "idle_seconds": 2})).score
    assert online is not None and online.online and online.idle_seconds == 2


@pytest.mark.parametrize("scoring, message", [
    ({}, "names its model"),
    ({"model": "../etc"}, "model id"),
    ({"model": "m", "mode": "plain", "online": True}, "private mode only"),
    ({"model": "m", "max_queries": -1}, "max_queries"),
])
def test_bad_score_specs_are_refused(scoring, message):
    with pytest.raises(ConfigError, match=message):
        job_spec("score", scoring=scoring)


def test_plain_scoring_needs_the_nodes_consent():
    cfg = parse_config(PartyConfig, PARTY, source="t")
    assert cfg.policy.scoring_modes == ["private"] and cfg.policy.max_scoring_queries_per_day is None
    private = check_policy(job_spec("score", scoring={"model": "m"}), cfg)
    assert private.ok and "scoring mode private is allowed" in private.checks
    plain = check_policy(job_spec("score", scoring={"model": "m", "mode": "plain"}), cfg)
    assert not plain.ok and "scoring mode plain is not among" in " ".join(plain.violations)
    both = parse_config(PartyConfig, {**PARTY, "policy": {"scoring_modes": ["private", "plain"]}}, source="t")
    assert check_policy(job_spec("score", scoring={"model": "m", "mode": "plain"}), both).ok
