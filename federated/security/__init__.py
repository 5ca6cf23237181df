"""Security: who a node is and how its messages are protected.

It owns the certificates (:mod:`.certs`: CA, layout, issuing, run-time checks), Ed25519
envelope and transcript signatures (:mod:`.signing`), end-to-end sealing with per-phase
ephemeral keys (:mod:`.sealing`), the one mTLS gRPC server/channel factory (:mod:`.transport`)
and the coordinator's certificate deny-list (:mod:`.revocation`).

It may import :mod:`fedcredit.runtime.errors` and :mod:`fedcredit.runtime.files` only; every other room
imports it.
"""
