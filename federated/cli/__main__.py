"""``python -m fedcredit.runtime.cli``: the ``fedcredit`` command."""

from fedcredit.runtime.cli.main import main

if __name__ == "__main__":
    main()
