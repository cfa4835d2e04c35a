"""``python -m smtpkit``: the same as the ``smtpkit`` command."""

from smtpkit.cli import main

if __name__ == "__main__":
    main()
