"""fedcredit.runtime (the ``federated/`` folder): the rooms that run :mod:`fedcredit.protocols` between real nodes.

Rooms, from the top floor down; each imports only what is below it (relatively: ``from ..errors import``) and
:mod:`fedcredit.protocols` (absolutely);
``tests/test_architecture.py`` holds the floors and fails on an import that climbs::

    cli/                 the ``fedcredit`` command, the demo cluster, the operator's client
    audit/, coordinator/ transcript verification and the report; the job manager and relay
    node/                the party node: approval, consent, data, its runners, its workdir, results
    plan.py, driver.py   the job plan; the driver that runs role programs over the relay
    codec.py, transcript.py, config.py   wire payloads, transcripts, typed config
    security/            certificates, signing, sealing, the mTLS transport, revocation
    errors.py, files.py  the ground floor

``reference.py`` (the centralized references, for the demo and benchmarks) and ``protogen.py``
(``make proto``) stand apart: only ``cli/`` imports them.
"""
