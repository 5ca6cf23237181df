"""The coordinator: the job manager and the relay between the parties.

It owns the gRPC servicers and job lifecycle (:mod:`.service`), the SQLite job store
(:mod:`.store`) and the mailbox with its job quotas and party rate limits (:mod:`.relay`).

It may import the shared modules (:mod:`fedcredit.runtime.plan`, :mod:`fedcredit.runtime.codec`,
:mod:`fedcredit.runtime.transcript`, :mod:`fedcredit.runtime.config`), :mod:`fedcredit.runtime.security`,
:mod:`fedcredit.runtime.errors`, :mod:`fedcredit.runtime.files`, and from the node only
the vocabulary both sides share: :mod:`fedcredit.runtime.node.approval` (to verify a party's approval)
and :mod:`fedcredit.runtime.node.results` (which results may leave a node). Never the party node itself,
the audit or the CLI.
"""
