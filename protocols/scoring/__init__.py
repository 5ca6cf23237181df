"""Scoring applicants with a trained two-party model: batch, private by default.

* :mod:`fedcredit.protocols.scoring.protocol` -- the partial scores, the platform's sealed table of them,
  and both role programs (private: the platform learns how many applicants are scored, not which; plain:
  the ids travel in the clear).
* :mod:`fedcredit.protocols.scoring.messages` -- payloads, the message table, parameters and results.
"""

from .messages import (
    ENTRY_BYTES,
    HostScoringResult,
    ModelVersion,
    PlainIds,
    PlainPartials,
    ScoreResult,
    ScoreStep,
    ScoreTable,
    ScoringMode,
    ScoringParams,
    SealedEntries,
    TableDigest,
    TableStatus,
)
from .protocol import (
    Requests,
    build_table,
    guest_program,
    guest_session_program,
    host_program,
    host_session_program,
    key_id,
    new_key,
    open_entry,
    partial_scores,
    sigmoid,
)

__all__ = [
    "ENTRY_BYTES",
    "HostScoringResult",
    "ModelVersion",
    "PlainIds",
    "PlainPartials",
    "ScoreResult",
    "ScoreStep",
    "ScoreTable",
    "ScoringMode",
    "ScoringParams",
    "SealedEntries",
    "TableDigest",
    "TableStatus",
    "Requests",
    "build_table",
    "guest_session_program",
    "host_session_program",
    "guest_program",
    "host_program",
    "key_id",
    "new_key",
    "open_entry",
    "partial_scores",
    "sigmoid",
]
