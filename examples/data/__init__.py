"""The example data, installed as the package ``fedcredit.runtime.example_data`` (see pyproject.toml's package-dir).

A wheel carries the files ``fedcredit demo`` runs on by default (default_credit's split and the platform's
consent registry, the breast split, and NOTICE with their provenance), so the demo works from an installed
wheel as it does from a checkout. This file holds no code.
"""
