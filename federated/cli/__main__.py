"""``python -m federated.cli``: the ``fedcredit`` command."""

from federated.cli.main import main

if __name__ == "__main__":
    main()
