"""fedcredit.v1 wire messages and services (generated; do not edit)."""
