"""The party node: what runs at a bank or a platform.

It owns the node's lifecycle (:mod:`.party`: dial out, approve, dispatch), its approvals
(:mod:`.approval`), consent filtering (:mod:`.consent`), dataset loading (:mod:`.data`), the
PSI, training and scoring runners (:mod:`.psi_runner`, :mod:`.train_runner`, :mod:`.score_runner`), the
model package (:mod:`.model_package`), the bank's online ScoreApplicant endpoint (:mod:`.score_service`), where its
kernels run (:mod:`.executors`: its process pool, :mod:`.workers`, or the bank's Dask cluster), the node store
(:mod:`.workdir`: workdir layout, caches, checkpoints, artifacts) and its typed results (:mod:`.results`).

It may import the shared modules (:mod:`fedcredit.runtime.plan`, :mod:`fedcredit.runtime.driver`,
:mod:`fedcredit.runtime.codec`, :mod:`fedcredit.runtime.transcript`, :mod:`fedcredit.runtime.config`),
:mod:`fedcredit.runtime.security`, :mod:`fedcredit.runtime.errors`, :mod:`fedcredit.runtime.files` and :mod:`protocols`;
never the coordinator, the audit or the CLI.
"""
