"""Transports: where a serialised message goes.

``base`` defines the :class:`~smtpkit._transports.base.AsyncTransport` protocol (one primitive,
``send_raw(envelope, data) -> SendResult``). ``smtp`` is the real one and the only module that
imports aiosmtplib; ``memory`` and ``file`` are for tests and development; ``multi`` combines
several transports (failover, round-robin). Import from the modules themselves.
"""
