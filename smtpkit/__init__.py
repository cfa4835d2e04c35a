"""smtpkit: transactional email for Python."""

from smtpkit._exceptions import *  # noqa: F403  (wired properly as modules land)
