"""hint_for: the replies and errors users hit most get a cause and a fix; others get None."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtpkit._hints import hint_for
from smtpkit._replies import Reply


def r(code: int, text: str) -> Reply:
    """A reply as a transport would parse it (enhanced code split off the text)."""
    return Reply.parse(code, text)


# (id, hint_for keyword arguments, a word the hint must contain)
CASES: list[tuple[str, dict[str, Any], str]] = [
    # --- authentication ---------------------------------------------------------------------
    (
        "ms-basic-auth-disabled",
        {
            "stage": "auth",
            "reply": r(
                535,
                "5.7.139 Authentication unsuccessful, basic authentication is disabled. "
                "[AM0PR02CA0001.eurprd02.prod.outlook.com]",
            ),
            "host": "smtp.office365.com",
        },
        "OAuth2",
    ),
    (
        "ms-smtp-auth-disabled-for-tenant",
        {
            "stage": "auth",
            "reply": r(
                535,
                "5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled "
                "for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information.",
            ),
        },
        "tenant admin must enable",
    ),
    (
        "ms-5.7.3",
        {
            "stage": "auth",
            "reply": r(535, "5.7.3 Authentication unsuccessful [BN6PR1101CA0023.namprd11]"),
        },
        "Microsoft 365",
    ),
    (
        "gmail-5.7.8-by-text",
        {
            "stage": "auth",
            "reply": r(
                535,
                "5.7.8 Username and Password not accepted. For more information, go to\n"
                "5.7.8  https://support.google.com/mail/?p=BadCredentials a1-20020 - gsmtp",
            ),
        },
        "App Password",
    ),
    (
        "gmail-5.7.8-by-host",
        {
            "stage": "auth",
            "reply": r(535, "5.7.8 Username and Password not accepted."),
            "host": "smtp.gmail.com",
        },
        "2-Step Verification",
    ),
    (
        "generic-535",
        {"stage": "auth", "reply": r(535, "5.7.8 Error: authentication failed: UGFzc3dvcmQ6")},
        "username or password",
    ),
    (
        "535-after-xoauth2",
        {
            "stage": "auth",
            "reply": r(535, "5.7.8 Username and Password not accepted."),
            "error_text": "XOAUTH2 authentication failed",
            "host": "smtp.gmail.com",
        },
        "access token",
    ),
    (
        "gmail-534-app-password",
        {
            "stage": "auth",
            "reply": r(
                534,
                "5.7.9 Application-specific password required. Learn more at\n"
                "5.7.9  https://support.google.com/mail/?p=InvalidSecondFactor - gsmtp",
            ),
        },
        "application-specific password",
    ),
    (
        "gmail-534-web-login",
        {
            "stage": "auth",
            "reply": r(534, "5.7.14 <https://accounts.google.com/signin/continue?x> Please log in"),
        },
        "browser",
    ),
    (
        "534-weak-mechanism",
        {"stage": "auth", "reply": r(534, "5.7.9 Authentication mechanism is too weak")},
        "too weak",
    ),
    (
        "530-starttls-first",
        {"stage": "mail", "reply": r(530, "5.7.0 Must issue a STARTTLS command first")},
        "tls=starttls",
    ),
    (
        "530-auth-required",
        {"stage": "mail", "reply": r(530, "5.7.0 Authentication Required. Learn more at")},
        "requires authentication",
    ),
    (
        "ms-530-5.7.57",
        {
            "stage": "mail",
            "reply": r(
                530,
                "5.7.57 Client not authenticated to send mail. Error: 535 5.7.139 "
                "Authentication unsuccessful",
            ),
        },
        "smtp.office365.com",
    ),
    (
        "538-encryption-required",
        {"stage": "auth", "reply": r(538, "5.7.11 Encryption required for requested mechanism")},
        "encrypted connection",
    ),
    (
        "454-too-many-logins",
        {"stage": "auth", "reply": r(454, "4.7.0 Too many login attempts, please try later")},
        "login attempts",
    ),
    (
        "504-mechanism-unsupported",
        {"stage": "auth", "reply": r(504, "5.5.4 Unrecognized authentication type")},
        "auth_mechanisms",
    ),
    # --- TLS --------------------------------------------------------------------------------
    (
        "wrong-version-number-587",
        {
            "stage": "tls",
            "error_text": "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)",
            "port": 587,
        },
        "tls=starttls",
    ),
    (
        "wrong-version-number-465",
        {
            "stage": "tls",
            "error_text": "[SSL: WRONG_VERSION_NUMBER] wrong version number",
            "port": 465,
        },
        "tls=implicit",
    ),
    (
        "unknown-protocol-other-port",
        {
            "stage": "connect",
            "error_text": "[SSL: UNKNOWN_PROTOCOL] unknown protocol",
            "port": 2465,
        },
        "465",
    ),
    (
        "record-layer-failure",
        {"stage": "tls", "error_text": "[SSL] record layer failure (_ssl.c:1000)", "port": 25},
        "smtp://",
    ),
    (
        "certificate-verify-failed",
        {
            "stage": "tls",
            "error_text": "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: "
            "unable to get local issuer certificate (_ssl.c:1006)",
        },
        "ca_file",
    ),
    (
        "self-signed",
        {
            "stage": "tls",
            "error_text": "certificate verify failed: self-signed certificate in certificate chain",
        },
        "Never disable verification",
    ),
    (
        "hostname-mismatch",
        {
            "stage": "tls",
            "error_text": "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: Hostname "
            "mismatch, certificate is not valid for 'mail.example.com'. (_ssl.c:1006)",
        },
        "host name",
    ),
    (
        "expired",
        {"stage": "tls", "error_text": "certificate verify failed: certificate has expired"},
        "expired",
    ),
    (
        "starttls-not-offered",
        {"stage": "tls", "error_text": "STARTTLS is required but the server did not offer it"},
        "plaintext",
    ),
    (
        "454-tls-not-available",
        {"stage": "tls", "reply": r(454, "4.7.0 TLS not available due to local problem")},
        "cannot start TLS",
    ),
    (
        "starttls-refused-5xx",
        {"stage": "tls", "reply": r(502, "5.5.1 Unrecognized command")},
        "refused STARTTLS",
    ),
    # --- connecting -------------------------------------------------------------------------
    (
        "connection-refused",
        {
            "stage": "connect",
            "error_text": "[Errno 111] Connect call failed ('127.0.0.1', 2525)",
            "host": "127.0.0.1",
            "port": 2525,
        },
        "127.0.0.1:2525",
    ),
    (
        "connection-refused-text",
        {"stage": "connect", "error_text": "Connection refused", "port": 587},
        "firewall",
    ),
    (
        "dns",
        {"stage": "connect", "error_text": "[Errno -2] Name or service not known"},
        "resolved",
    ),
    (
        "timeout-port-25",
        {"stage": "connect", "error_text": "Timed out connecting to host", "port": 25},
        "587",
    ),
    (
        "timeout-greeting-465",
        {"stage": "greeting", "error_text": "timed out waiting for greeting", "port": 465},
        "tls=implicit",
    ),
    (
        "timeout-generic",
        {"stage": "connect", "error_text": "timed out", "host": "mail.example.com", "port": 587},
        "mail.example.com:587",
    ),
    # --- AUTH offer -------------------------------------------------------------------------
    (
        "no-common-mechanism",
        {"stage": "auth", "error_text": "no common AUTH mechanism (server offers: GSSAPI)"},
        "XOAUTH2",
    ),
    (
        "auth-not-offered",
        {"stage": "auth", "error_text": "the server does not offer AUTH"},
        "587",
    ),
    # --- policy -----------------------------------------------------------------------------
    (
        "relay-denied",
        {"stage": "rcpt", "reply": r(550, "5.7.1 <a@example.org>: Relay access denied")},
        "relay",
    ),
    (
        "relay-denied-554",
        {"stage": "rcpt", "reply": r(554, "5.7.1 <a@example.org>: Relay access denied")},
        "authenticate",
    ),
    (
        "550-5.7.1-rcpt-no-text",
        {"stage": "rcpt", "reply": r(550, "5.7.1 Unable to deliver")},
        "relay",
    ),
    (
        "554-sender-not-allowed",
        {"stage": "mail", "reply": r(554, "5.7.1 <x@example.org>: Sender address rejected")},
        "allowed to send as",
    ),
    (
        "ses-not-verified",
        {
            "stage": "data",
            "reply": r(
                554,
                "Message rejected: Email address is not verified. The following identities "
                "failed the check in region US-EAST-1: a@example.org",
            ),
            "host": "email-smtp.us-east-1.amazonaws.com",
        },
        "sandbox",
    ),
    (
        "ses-not-verified-by-text",
        {
            "stage": "data",
            "reply": r(
                554,
                "Message rejected: Email address is not verified. The following identities "
                "failed the check in region EU-WEST-1: a@example.org",
            ),
        },
        "verify the sender",
    ),
    (
        "553-not-owned",
        {
            "stage": "mail",
            "reply": r(553, "5.7.1 <x@example.org>: Sender address rejected: not owned by user u"),
        },
        "does not own",
    ),
    (
        "ms-send-as-denied",
        {
            "stage": "data",
            "reply": r(
                554,
                "5.2.252 SendAsDenied; u@example.org not allowed to send as x@example.org",
            ),
        },
        "Send As",
    ),
    (
        "spamhaus",
        {
            "stage": "rcpt",
            "reply": r(
                554,
                "5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org",
            ),
        },
        "blocklist",
    ),
    (
        "barracuda",
        {"stage": "connect", "reply": r(554, "Service unavailable; barracudacentral.org")},
        "delisting",
    ),
    (
        "listed",
        {"stage": "rcpt", "reply": r(550, "5.7.1 Your IP 192.0.2.1 is listed at a DNSBL")},
        "blocklist",
    ),
    (
        "ms-banned-ip",
        {"stage": "rcpt", "reply": r(550, "5.7.606 Access denied, banned sending IP [192.0.2.1]")},
        "blocklist",
    ),
    (
        "gmail-5.7.26",
        {
            "stage": "data",
            "reply": r(
                550,
                "5.7.26 This mail is unauthenticated, which poses a security risk to the "
                "sender and Gmail users, and has been blocked.",
            ),
        },
        "SPF",
    ),
    (
        "5.7.27-spf",
        {"stage": "data", "reply": r(550, "5.7.27 The sender address does not pass")},
        "DKIM",
    ),
    (
        "5.7.25-ptr",
        {"stage": "data", "reply": r(550, "5.7.25 The IP address sending this message")},
        "PTR",
    ),
    (
        "spam-content",
        {
            "stage": "data",
            "reply": r(
                550, "5.7.1 Our system has detected that this message is likely unsolicited"
            ),
        },
        "spam",
    ),
    # --- busy / rate ------------------------------------------------------------------------
    (
        "421-busy",
        {"stage": "greeting", "reply": r(421, "4.3.2 Service not available")},
        "backoff",
    ),
    (
        "421-too-many-connections",
        {"stage": "connect", "reply": r(421, "Too many connections from your IP")},
        "max_connections",
    ),
    (
        "gmail-421-rate",
        {
            "stage": "data",
            "reply": r(
                421,
                "4.7.0 Our system has detected an unusual rate of unsolicited mail "
                "originating from your IP address.",
            ),
        },
        "rate-limiting",
    ),
    (
        "gmail-421-4.7.0-by-host",
        {
            "stage": "mail",
            "reply": r(421, "4.7.0 Try again later, closing connection."),
            "host": "smtp.gmail.com",
        },
        "slow down",
    ),
    (
        "421-rate-limit-not-gmail",
        {"stage": "mail", "reply": r(421, "4.7.0 Rate limit exceeded, slow down")},
        "rate-limiting this sender",
    ),
    (
        "ses-daily-quota",
        {"stage": "mail", "reply": r(454, "Throttling failure: Daily message quota exceeded.")},
        "quota",
    ),
    (
        "ses-rate",
        {
            "stage": "data",
            "reply": r(454, "4.7.0 Throttling failure: Maximum sending rate exceeded."),
        },
        "SES",
    ),
    (
        "gmail-daily-limit",
        {"stage": "mail", "reply": r(550, "5.4.5 Daily user sending limit exceeded.")},
        "daily sending limit",
    ),
    (
        "greylisting-450",
        {"stage": "rcpt", "reply": r(450, "4.7.1 <a@example.org>: Recipient address rejected")},
        "greylisting",
    ),
    (
        "greylisting-451",
        {"stage": "rcpt", "reply": r(451, "4.7.1 Please try again later")},
        "normal",
    ),
    (
        "greylisted-text",
        {
            "stage": "rcpt",
            "reply": r(450, "4.2.0 <a@example.org>: Recipient address rejected: Greylisted"),
        },
        "greylisting",
    ),
    # --- mailbox / size ---------------------------------------------------------------------
    (
        "user-unknown",
        {"stage": "rcpt", "reply": r(550, "5.1.1 <nobody@example.org>: User unknown")},
        "does not exist",
    ),
    (
        "user-unknown-no-enhanced",
        {"stage": "rcpt", "reply": r(550, "No such user here")},
        "typos",
    ),
    (
        "ms-recipient-not-found",
        {"stage": "rcpt", "reply": r(550, "5.1.10 RESOLVER.ADR.RecipientNotFound; not found")},
        "does not exist",
    ),
    (
        "too-many-recipients-452",
        {"stage": "rcpt", "reply": r(452, "4.5.3 Error: too many recipients")},
        "max_recipients_per_transaction",
    ),
    (
        "too-many-recipients-552",
        {"stage": "rcpt", "reply": r(552, "5.5.3 Too many recipients")},
        "fewer recipients",
    ),
    (
        "size-5.3.4",
        {"stage": "data", "reply": r(552, "5.3.4 Message size exceeds fixed limit")},
        "larger",
    ),
    (
        "size-5.2.3",
        {"stage": "data", "reply": r(552, "5.2.3 Message exceeds maximum size")},
        "attachments",
    ),
    (
        "mailbox-full",
        {"stage": "rcpt", "reply": r(552, "5.2.2 Mailbox full")},
        "mailbox is full",
    ),
    # --- less common branches -------------------------------------------------------------
    (
        "ms-smtp-auth-disabled-535-only",
        {"stage": "auth", "reply": r(535, "SmtpClientAuthentication is disabled for the Mailbox")},
        "SMTP AUTH",
    ),
    (
        "gmail-534-5.7.9-by-host",
        {"stage": "auth", "reply": r(534, "5.7.9 Please log in"), "host": "smtp.gmail.com"},
        "App Password",
    ),
    (
        "454-auth-temporary",
        {"stage": "auth", "reply": r(454, "4.7.0 Temporary authentication failure")},
        "retry later",
    ),
    (
        "connection-refused-host-only",
        {"stage": "connect", "error_text": "Connection refused", "host": "mail.example.com"},
        "mail.example.com:",
    ),
    (
        "certificate-generic",
        {
            "stage": "tls",
            "error_text": "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed",
        },
        "could not be verified",
    ),
    (
        "timeout-during-data",
        {"stage": "data", "error_text": "timed out", "port": 25},
        "stopped answering",
    ),
]


@pytest.mark.parametrize(("kwargs", "keyword"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hint(kwargs: dict[str, Any], keyword: str) -> None:
    hint = hint_for(**kwargs)
    assert hint is not None
    assert keyword.lower() in hint.lower()
    # One or two sentences, and never the server's own words verbatim.
    assert hint.count(". ") <= 2
    reply = kwargs.get("reply")
    if reply is not None and len(reply.text) > 30:
        assert reply.text not in hint


def test_case_ids_unique() -> None:
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"stage": "data", "reply": Reply(250, "2.0.0", "Ok: queued as 4Bc1")},
        {"stage": "auth", "reply": Reply(235, "2.7.0", "Authentication successful")},
        {"stage": "auth", "reply": Reply(334, None, "VXNlcm5hbWU6")},
        {"stage": "rcpt", "reply": Reply(251, "2.1.5", "User not local; will forward")},
        {
            "stage": "rcpt",
            "reply": Reply(250, None, "relay ok, spamhaus listed, greylist, STARTTLS"),
        },
        {"stage": "mail", "reply": Reply(500, "5.5.2", "Syntax error")},
        {"stage": None},
        {"stage": "connect", "error_text": "something odd happened"},
        {"stage": "data", "reply": Reply(454, "4.3.0", "Temporary failure, try again")},
        {"stage": "rcpt", "reply": Reply(450, "4.2.1", "Mailbox unavailable")},
    ],
)
def test_no_hint(kwargs: dict[str, Any]) -> None:
    assert hint_for(**kwargs) is None


def test_codes_decide_not_text() -> None:
    # The same greylisting words on a 2xx never produce a hint, and a 5.7.139 is the Microsoft
    # hint whatever the text says.
    assert hint_for(stage="rcpt", reply=Reply(250, None, "greylisted")) is None
    hint = hint_for(stage="auth", reply=Reply(535, "5.7.139", "nothing useful"))
    assert hint is not None
    assert "Microsoft" in hint


def test_unsafe_host_is_not_echoed() -> None:
    hint = hint_for(stage="connect", error_text="Connection refused", host="evil\r\nhost", port=587)
    assert hint is not None
    assert "evil" not in hint
    assert "port 587" in hint


CODES = [421, 450, 451, 452, 454, 530, 534, 535, 538, 550, 552, 553, 554]
ENHANCED = [None, "5.7.1", "5.7.8", "5.7.139", "4.7.1", "5.1.1", "5.7.26", "4.7.0"]
STAGES = [None, "connect", "greeting", "ehlo", "tls", "auth", "mail", "rcpt", "data"]


@given(
    st.sampled_from(CODES),
    st.sampled_from(ENHANCED),
    st.sampled_from(STAGES),
    st.text(
        alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=", min_size=12
    ),
    st.sampled_from(["", "relay", "spamhaus", "greylist", "starttls", "gsmtp", "xoauth2"]),
)
def test_hint_never_echoes_reply_payload(
    code: int, enhanced: str | None, stage: str | None, payload: str, word: str
) -> None:
    # An AUTH reply may echo base64 (a challenge, or a broken server repeating the client's
    # line); whatever the reply says, the hint is fixed text.
    # A base64-looking prefix keeps hypothesis from picking an ordinary English word.
    payload = "dXNlcjk" + payload
    reply = Reply(code, enhanced, f"{word} {payload}")
    hint = hint_for(stage=stage, reply=reply, error_text=payload, host="smtp.example.com")
    if hint is not None:
        assert payload not in hint
        assert 20 < len(hint) < 400


@pytest.mark.parametrize(
    ("stage", "text", "keyword"),
    [
        ("auth", "refusing to authenticate over an unencrypted connection", "allow_insecure_auth"),
        ("mail", "the message needs SMTPUTF8 (a non-ASCII address)", "SMTPUTF8"),
        ("mail", "the message has 8-bit data and x does not offer 8BITMIME", "7-bit"),
        ("auth", "the server does not offer AUTH on this connection", "587/465"),
        ("data", "timed out waiting for the reply", "stopped answering"),
        ("connect", "timed out", "firewall"),
    ],
)
def test_hints_for_smtpkit_own_refusals_and_timeouts(stage: str, text: str, keyword: str) -> None:
    hint = hint_for(stage=stage, error_text=text, host="mail.example.com", port=2525)
    assert hint is not None
    assert keyword in hint
