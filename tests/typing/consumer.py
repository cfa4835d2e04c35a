"""The public API used as an application would; checked by ``mypy --strict`` in CI, not run."""

from __future__ import annotations

from smtpkit import (
    Address,
    AsyncMailer,
    Attachment,
    Envelope,
    InlineImage,
    Mailbox,
    Mailer,
    Message,
    RecipientStatus,
    Reply,
    SendResult,
    SMTPConfig,
    Templates,
    TLSMode,
    TransportError,
)


def build() -> Message:
    return Message(
        sender="App <no-reply@app.example.com>",
        to=["ann@example.com", ("Bob", "bob@example.com")],
        subject="Hi",
        text="Hello",
        html="<p>Hello</p>",
        attachments=[Attachment("a.txt", b"data")],
        inline=[InlineImage("logo", b"\x89PNG", "image/png")],
    )


def sync_send(config: SMTPConfig) -> tuple[str, ...]:
    with Mailer(config) as mailer:
        result: SendResult = mailer.send(build())
    statuses: tuple[RecipientStatus, ...] = result.recipients
    assert all(isinstance(s.reply, Reply) for s in statuses)
    return result.accepted


async def async_send() -> dict[str, Reply]:
    config = SMTPConfig(host="smtp.example.com", tls=TLSMode.IMPLICIT)
    async with AsyncMailer(config) as mailer:
        try:
            result = await mailer.send(
                build(), envelope=Envelope("bounce@app.example.com", ["x@example.com"])
            )
        except TransportError as exc:
            print(exc.stage, exc.reply, exc.is_transient, exc.hint)
            raise
    return result.rejected


def templated() -> Message:
    templates = Templates("templates")
    mailbox: Mailbox = Mailbox.parse("Ann <ann@example.com>")
    address: Address = mailbox.address
    return templates.message("welcome", {"name": "Ann"}, sender="a@example.com", to=[str(address)])
