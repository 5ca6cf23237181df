"""The coordinator: the job manager and the relay between the parties.

It owns the gRPC servicers and job lifecycle (:mod:`.service`), the SQLite job store
(:mod:`.store`) and the mailbox with its job quotas and party rate limits (:mod:`.relay`).

It may import the shared modules (:mod:`federated.plan`, :mod:`federated.codec`,
:mod:`federated.transcript`, :mod:`federated.config`), :mod:`federated.security`,
:mod:`federated.errors`, :mod:`federated.files`, and from the node only
the vocabulary both sides share: :mod:`federated.node.approval` (to verify a party's approval)
and :mod:`federated.node.results` (which results may leave a node). Never the party node itself,
the audit or the CLI.
"""
