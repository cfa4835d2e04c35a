"""phpmailer_script.php, ported to smtpkit option by option (README.md has the full mapping).

PHPMailer sets options one by one on a mutable object and reports failure in ``ErrorInfo``.
smtpkit splits the same information into a server configuration (:class:`smtpkit.SMTPConfig`,
made once per application), an immutable :class:`smtpkit.Message` (validated when it is built:
a bad address or a line break in a header raises at once, before any connection) and a
:class:`smtpkit.Mailer` that sends it and returns a per-recipient result, or raises a typed
error with a plain-language ``.hint``.

Run it against your server::

    SMTP_PASSWORD=... python examples/phpmailer_migration/smtpkit_equivalent.py

or against any server given as a DSN (the tests use the embedded development server)::

    SMTPKIT_DSN='smtp://orders%40example.com:secret@smtp.example.com:587' \\
        python examples/phpmailer_migration/smtpkit_equivalent.py
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

from smtpkit import (
    Attachment,
    Credentials,
    Mailer,
    Message,
    Secret,
    SMTPConfig,
    SmtpkitError,
    TLSMode,
    TransportError,
)

HERE = Path(__file__).resolve().parent

# $mail->SMTPDebug = SMTP::DEBUG_SERVER;  ->  transcript=True keeps the (redacted) conversation
# on errors (printed below); DEBUG logging on "smtpkit.transport" would print it live.
DEBUG = os.environ.get("SMTP_DEBUG") == "1"


def phpmailer_config(password: str) -> SMTPConfig:
    """The server settings of phpmailer_script.php, one field per PHPMailer option."""
    return SMTPConfig(
        host="smtp.example.com",  # $mail->isSMTP(); $mail->Host = 'smtp.example.com';
        port=587,  # $mail->Port = 587;
        tls=TLSMode.STARTTLS,  # $mail->SMTPSecure = PHPMailer::ENCRYPTION_STARTTLS;
        credentials=Credentials(  # $mail->SMTPAuth = true;
            "orders@example.com",  # $mail->Username
            password=Secret(password),  # $mail->Password = getenv('SMTP_PASSWORD');
        ),
        transcript=DEBUG,  # $mail->SMTPDebug
    )


def build_message() -> Message:
    """The message of phpmailer_script.php. CharSet: smtpkit always writes UTF-8."""
    return Message(
        sender=("Example Shop", "orders@example.com"),  # $mail->setFrom(addr, name)
        to=[("Ann Lee", "ann@example.org")],  # $mail->addAddress(addr, name)
        reply_to=[("Example Support", "support@example.com")],  # $mail->addReplyTo()
        cc=["accounts@example.com"],  # $mail->addCC()
        bcc=["archive@example.com"],  # $mail->addBCC(): never written into the headers
        attachments=[
            Attachment.from_path(HERE / "terms.txt"),  # $mail->addAttachment($path)
            Attachment.from_path(HERE / "terms.txt", filename="terms-2027.txt"),  # ($path, $name)
        ],
        subject="Your order #1001",  # $mail->Subject
        # $mail->isHTML(true); $mail->Body = ...  (HTML given: the message is HTML)
        html="<p>Hello Ann,</p><p>thanks for your order <b>#1001</b>.</p>",
        # $mail->AltBody = ...  (leave it out and smtpkit derives the text from the HTML)
        text="Hello Ann,\n\nthanks for your order #1001.",
    )


def main() -> int:
    """Send the message; print what happened, like the PHP script's echo lines."""
    # The tests (and twelve-factor apps) give the server as a DSN instead of in code.
    dsn = os.environ.get("SMTPKIT_DSN")
    password = os.environ.get("SMTP_PASSWORD")
    try:
        if dsn:
            config = dataclasses.replace(SMTPConfig.from_dsn(dsn), transcript=DEBUG)
        elif password:
            config = phpmailer_config(password)
        else:
            print("set SMTP_PASSWORD (or SMTPKIT_DSN to use another server)", file=sys.stderr)
            return 2
        message = build_message()  # PHPMailer finds bad addresses at send(); smtpkit here
        with Mailer(config) as mailer:  # $mail->send();
            result = mailer.send(message)
    except TransportError as exc:  # catch (Exception $e) { ... $mail->ErrorInfo ... }
        print(f"Message could not be sent. Mailer Error: {exc}")  # str() includes the hint
        if exc.transcript:
            print("\n".join(exc.transcript))
        return 1
    except SmtpkitError as exc:  # the message or configuration itself is invalid
        print(f"Message could not be built: {exc}", file=sys.stderr)
        return 2
    # Unlike PHPMailer, the result says what the server did with each recipient.
    print("Message sent")
    for status in result.recipients:
        print(f"  {status.address}: {status.reply}")
    print(f"  Message-ID: {result.message_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
