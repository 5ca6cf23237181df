"""The example configs in the README stay valid."""

from __future__ import annotations

from pathlib import Path

from fedcredit.runtime.config import ClientConfig, CoordinatorConfig, PartyConfig, load_config, load_job_spec

DEPLOY = Path(__file__).resolve().parent.parent / "examples" / "deploy"


def test_example_configs_load() -> None:
    coord = load_config(CoordinatorConfig, DEPLOY / "coordinator.yaml")
    assert coord.parties == ["bank", "platform"] and coord.tls.ca.is_absolute()
    bank = load_config(PartyConfig, DEPLOY / "bank.yaml")
    assert bank.datasets["credit"].path.exists() and bank.datasets["credit"].label_column == "y"
    platform = load_config(PartyConfig, DEPLOY / "platform.yaml")
    assert platform.datasets["credit"].path.exists()
    load_config(ClientConfig, DEPLOY / "client.yaml")
    job = load_job_spec(DEPLOY / "job.yaml")
    assert job.lr_params().batch_size == 0 and job.guest.party == "bank"
