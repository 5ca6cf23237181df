"""``python -m fedcredit.runtime.cli``: the ``fedcredit`` command."""

from .main import main

if __name__ == "__main__":
    main()
