"""Pure protocol math for fedcredit.

Nothing in this package opens a socket, reads a file or a clock. Randomness is
passed in. The runtime in :mod:`federated` decodes wire messages, calls these
functions and encodes the results.
"""
