"""Optional integrations with other frameworks; each module needs its own extra.

``smtpkit.contrib.celery``
    send messages from Celery workers (``pip install 'smtpkit[celery]'``).

Nothing here is imported by ``import smtpkit``: import the module you use.
"""
