"""fedcredit runtime: the rooms that run :mod:`protocols` between real nodes.

Rooms, from the top floor down; each imports only what is below it (and :mod:`protocols`)::

    cli/                 the ``fedcredit`` command, the demo cluster, the operator's client
    audit/, coordinator/ transcript verification and the report; the job manager and relay
    node/                the party node: approval, consent, data, its runners, its workdir, results
    plan.py, runtime.py, codec.py, transcript.py, config.py   shared by node, coordinator and audit
    security/            certificates, signing, sealing, the mTLS transport, revocation
    errors.py, files.py  the ground floor

``reference.py`` (the centralized references) and ``protogen.py`` (``make proto``) stand apart.
"""
