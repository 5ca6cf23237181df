"""Coordinated vertical logistic regression (guest, host, coordinator) on Paillier."""

from .metrics import ks_statistic, roc_auc
from .params import BudgetPlan, HeteroLRParams, plan_budget
from .preprocess import Standardizer, epoch_batches, kfold_assign, split_train_test
from .protocol import (
    CoordinatorSummary,
    GuestModel,
    HostModel,
    LRStep,
    coordinator_program,
    guest_program,
    host_program,
)

__all__ = [
    "BudgetPlan",
    "CoordinatorSummary",
    "GuestModel",
    "HeteroLRParams",
    "HostModel",
    "LRStep",
    "Standardizer",
    "coordinator_program",
    "epoch_batches",
    "guest_program",
    "host_program",
    "kfold_assign",
    "ks_statistic",
    "plan_budget",
    "roc_auc",
    "split_train_test",
]
