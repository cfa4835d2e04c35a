"""Plain-language hints for the failures users hit most.

:func:`hint_for` turns a failure (where it happened, the server's reply, or the text of a
network/TLS error) into one or two sentences naming the likely cause and the fix. It is what
fills :attr:`TransportError.hint <smtpkit.TransportError>`.

Rules:

* A reply is judged by its numeric code and enhanced status code first; its text only picks
  among the hints for that code (provider wording, "relay", "greylist", blocklist names). Text
  never decides whether a failure is transient: that is the error's ``is_transient``.
* Hints are fixed sentences. They never repeat the server's text (which may echo an AUTH
  payload) and never contain a credential; only the configured host and port are inserted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from smtpkit._replies import Reply

__all__ = ["hint_for"]

# Hosts and reply wording that identify the big providers, whose replies need specific advice.
_GOOGLE_HOSTS = ("gmail.com", "googlemail.com", "google.com")
_GOOGLE_TEXT = ("support.google.com", "gsmtp", "gmail")
_MICROSOFT_HOSTS = ("office365.com", "outlook.com", "hotmail.com", "live.com", "microsoft.com")
_MICROSOFT_TEXT = ("office365", "outlook.com", "protection.outlook", "aka.ms", "microsoft")
_SES_HOSTS = ("amazonaws.com",)
_SES_TEXT = ("amazon ses", "amazonaws", "failed the check in region")

# Blocklist wording; whole words only, so that "greylisted" is not read as "listed".
_BLOCKLIST = re.compile(
    r"spamhaus|barracuda|spamcop|sorbs|uceprotect|dnsbl|\brbl\b|blocked using|"
    r"block ?list|black ?list|\blisted\b|banned sending ip|poor reputation",
)
_SAFE_HOST = re.compile(r"[A-Za-z0-9._:\[\]-]{1,253}")


def _host_in(host: str, domains: tuple[str, ...]) -> bool:
    """Whether ``host`` is one of ``domains`` or a subdomain of one."""
    return any(host == domain or host.endswith("." + domain) for domain in domains)


@dataclass(frozen=True, slots=True)
class _Failure:
    """What a hint is decided from, normalised once."""

    stage: str | None
    code: int | None
    enhanced: str | None
    text: str  # reply text and error text, lower case
    host: str  # lower case, "" when unknown
    port: int | None

    def has(self, *needles: str) -> bool:
        """Whether the text contains any of the needles (already lower case)."""
        return any(needle in self.text for needle in needles)

    def is_google(self) -> bool:
        """Whether this looks like Gmail / Google Workspace."""
        return _host_in(self.host, _GOOGLE_HOSTS) or self.has(*_GOOGLE_TEXT)

    def is_microsoft(self) -> bool:
        """Whether this looks like Microsoft 365 / Outlook.com."""
        return _host_in(self.host, _MICROSOFT_HOSTS) or self.has(*_MICROSOFT_TEXT)

    def is_ses(self) -> bool:
        """Whether this looks like Amazon SES."""
        return _host_in(self.host, _SES_HOSTS) or self.has(*_SES_TEXT)

    @property
    def where(self) -> str:
        """``host:port`` for messages, leaving out what is unknown or unsafe to print."""
        host = self.host if _SAFE_HOST.fullmatch(self.host) else ""
        if host and self.port is not None:
            return f"{host}:{self.port}"
        if host:
            return host
        return f"port {self.port}" if self.port is not None else "the server"


def hint_for(
    *,
    stage: str | None,
    reply: Reply | None = None,
    error_text: str = "",
    host: str | None = None,
    port: int | None = None,
) -> str | None:
    """A plain-language cause and fix for a failure, or ``None`` when there is none to give.

    Args:
        stage: where the failure happened (``connect``, ``greeting``, ``ehlo``, ``tls``,
            ``auth``, ``mail``, ``rcpt``, ``data``), or ``None``.
        reply: the server's reply, when the failure is a reply. 2xx/3xx replies get no hint.
        error_text: the text of the underlying error (e.g. ``str(exc)`` of an ``OSError`` or
            ``ssl.SSLError``), or smtpkit's own message; used to pick among hints, and alone
            when there is no reply. Include the mechanism name for AUTH failures.
        host, port: the server connected to, used to recognise providers and in the hint.

    >>> hint_for(stage="auth", reply=Reply(535, "5.7.139", "Authentication unsuccessful"))
    ... # doctest: +ELLIPSIS
    'Microsoft 365 has basic authentication (username and password) disabled...'
    """
    reply_text = reply.text if reply is not None else ""
    failure = _Failure(
        stage=stage,
        code=reply.code if reply is not None else None,
        enhanced=reply.enhanced_code if reply is not None else None,
        text=f"{reply_text}\n{error_text}".lower(),
        host=(host or "").strip().lower().rstrip("."),
        port=port,
    )
    if failure.code is not None:
        if failure.code < 400:
            return None
        return _reply_hint(failure) or _network_hint(failure)
    return _network_hint(failure)


# --------------------------------------------------------------------------------------------
# Replies, grouped by code. Each function returns None when it has nothing specific to say.


def _reply_hint(f: _Failure) -> str | None:
    """Dispatch on the reply code, then the enhanced code; text only chooses the wording."""
    rules = (
        _auth_replies,
        _tls_replies,
        _busy_replies,
        _policy_replies,
        _mailbox_replies,
        _greylisting,
    )
    for rule in rules:
        hint = rule(f)
        if hint is not None:
            return hint
    return None


_MS_BASIC_AUTH_OFF = (
    "Microsoft 365 has basic authentication (username and password) disabled for this account "
    "or tenant. Use OAuth2 (XOAUTH2 with an access token for the SMTP.Send scope), or ask the "
    "tenant admin to enable SMTP AUTH for this mailbox."
)
_MS_SMTP_AUTH_OFF = (
    "SMTP AUTH (authenticated client SMTP submission) is disabled for this Microsoft 365 tenant "
    "or mailbox. A tenant admin must enable it for the mailbox, or use OAuth2 (XOAUTH2)."
)
_MS_AUTH_UNSUCCESSFUL = (
    "Microsoft 365 refused the login: check the username (the full mailbox address) and "
    "password; with MFA or security defaults on, basic auth and app passwords usually fail, so "
    "use OAuth2 (XOAUTH2) or have an admin enable SMTP AUTH for the mailbox."
)
_GMAIL_BAD_CREDENTIALS = (
    "Gmail does not accept your account password over SMTP: turn on 2-Step Verification and "
    "use an App Password, or authenticate with OAuth2 (XOAUTH2)."
)
_GMAIL_APP_SPECIFIC = (
    "Gmail requires an application-specific password: create an App Password (needs 2-Step "
    "Verification) and use it instead of the account password, or use OAuth2 (XOAUTH2)."
)
_GMAIL_WEB_LOGIN = (
    "Google blocked this sign-in as suspicious: sign in once in a browser from this network, "
    "then use an App Password or OAuth2 (XOAUTH2)."
)
_OAUTH_REFUSED = (
    "The server refused the OAuth2 access token: it may be expired, issued for another user "
    "than the username, or lack the mail scope (Gmail: https://mail.google.com/, Microsoft: "
    "https://outlook.office.com/SMTP.Send)."
)
_BAD_CREDENTIALS = (
    "The server rejected the username or password: check both (the username is often the full "
    "email address). Gmail, Microsoft 365, Yahoo and iCloud need an app password or OAuth2."
)
_WEAK_MECHANISM = (
    "The server considers this AUTH mechanism too weak here: use TLS (tls=starttls or "
    "implicit) or another mechanism in auth_mechanisms."
)
_ENCRYPTION_REQUIRED = (
    "The server only accepts this AUTH mechanism over an encrypted connection: use "
    "tls=starttls (smtp:// on 587) or tls=implicit (smtps:// on 465)."
)
_MUST_STARTTLS = (
    "The server requires STARTTLS before this command: use tls=starttls (an smtp:// DSN, "
    "usually port 587) or tls=implicit (smtps://, port 465), not tls=none."
)
_AUTH_REQUIRED = (
    "The server requires authentication before sending: set credentials (username and "
    "password or token); submission servers on 587/465 do not accept anonymous mail."
)
_MS_NOT_AUTHENTICATED = (
    "Microsoft 365 received mail without a successful login (530 5.7.57): set credentials and "
    "connect to smtp.office365.com:587 with STARTTLS, or use a connector / direct send."
)
_TOO_MANY_LOGINS = (
    "Too many login attempts in a short time: wait before retrying, and check the credentials "
    "so that failed logins do not keep the account locked."
)
_TEMP_AUTH_FAILURE = (
    "The server could not authenticate right now (a temporary failure on its side): retry later."
)
_MECHANISM_NOT_SUPPORTED = (
    "The server does not support this AUTH mechanism: leave it out of auth_mechanisms, or "
    "list one the server offers in its EHLO AUTH line."
)


def _auth_replies(f: _Failure) -> str | None:
    """535/534/530/538/504 and the auth-stage 454: credentials, app passwords, OAuth2."""
    if f.enhanced == "5.7.139" or (f.code == 535 and f.has("basic authentication is disabled")):
        if f.has("smtpclientauthentication is disabled", "smtp client authentication"):
            return _MS_SMTP_AUTH_OFF
        return _MS_BASIC_AUTH_OFF
    if f.code == 535:
        if f.has("smtpclientauthentication is disabled"):
            return _MS_SMTP_AUTH_OFF
        if f.has("xoauth2", "oauthbearer", "invalid_token", "access token"):
            return _OAUTH_REFUSED
        if f.enhanced == "5.7.3" or f.is_microsoft():
            return _MS_AUTH_UNSUCCESSFUL
        if f.is_google():
            return _GMAIL_BAD_CREDENTIALS
        return _BAD_CREDENTIALS
    if f.code == 534:
        if f.has("application-specific password", "app password", "invalidsecondfactor"):
            return _GMAIL_APP_SPECIFIC
        if f.enhanced == "5.7.14" or f.has("web browser", "continuesignin"):
            return _GMAIL_WEB_LOGIN
        if f.enhanced == "5.7.9" and f.is_google():
            return _GMAIL_APP_SPECIFIC
        return _WEAK_MECHANISM
    if f.code == 530:
        if f.enhanced == "5.7.57":
            return _MS_NOT_AUTHENTICATED
        if f.has("starttls", "tls first", "tls required", "encryption required"):
            return _MUST_STARTTLS
        return _AUTH_REQUIRED
    if f.code == 538:
        return _ENCRYPTION_REQUIRED
    if f.code == 504 and f.stage == "auth":
        return _MECHANISM_NOT_SUPPORTED
    if f.code == 454 and f.stage == "auth":
        if f.has("login attempts", "too many"):
            return _TOO_MANY_LOGINS
        return _TEMP_AUTH_FAILURE
    return None


_SES_THROTTLED = (
    "Amazon SES throttled the account (daily quota or maximum send rate exceeded): send "
    "slower (rate limit, fewer connections) or request a quota increase in the SES console."
)
_TLS_UNAVAILABLE = (
    "The server advertised STARTTLS but cannot start TLS right now (temporary, 454): retry "
    "later; if it persists the server's TLS setup is broken, so tell its administrator."
)
_STARTTLS_REFUSED = (
    "The server refused STARTTLS: smtpkit will not continue in plaintext. If this is port 465 "
    "use implicit TLS (smtps://); otherwise check the server's TLS configuration."
)


def _tls_replies(f: _Failure) -> str | None:
    """454 (TLS unavailable, or SES throttling) and refusals of STARTTLS itself."""
    if f.code == 454:
        if f.stage == "tls" or f.has("tls"):
            return _TLS_UNAVAILABLE
        return None
    if f.stage == "tls" and f.code is not None and f.code >= 500:
        return _STARTTLS_REFUSED
    return None


_GMAIL_RATE = (
    "Gmail is rate-limiting this sender (unusual rate of mail): slow down, spread sending over "
    "time, and make sure SPF/DKIM are set up; smtpkit retries 4xx with backoff."
)
_RATE_LIMITED = (
    "The server is rate-limiting this sender: send slower (a messages-per-second limit, fewer "
    "connections) or ask the provider for a higher limit; smtpkit retries 4xx with backoff."
)
_TOO_MANY_CONNECTIONS = (
    "The server limits concurrent connections from you: lower pool max_connections (and "
    "send_many concurrency); smtpkit backs off and retries."
)
_SERVICE_UNAVAILABLE = (
    "The server is busy or shutting down the connection (421): this is temporary, so retry "
    "later with backoff; if it keeps happening, send slower or with fewer connections."
)
_GREYLISTED = (
    "The receiving server is greylisting: a temporary refusal of a first-time sender is "
    "normal, and a retry after a few minutes is accepted (use a queue or the outbox)."
)
_GMAIL_DAILY_LIMIT = (
    "The account hit its daily sending limit (Gmail: 5.4.5): wait until the limit resets, or "
    "send bulk and transactional mail through a dedicated email provider."
)

_TOO_MANY_RECIPIENTS = (
    "The server accepts fewer recipients per message: lower max_recipients_per_transaction "
    "(smtpkit splits the rest into further transactions) or send separate messages."
)


def _busy_replies(f: _Failure) -> str | None:
    """421 busy/rate limits, provider throttling, explicit greylisting, recipient limits."""
    if f.has("daily message quota", "maximum sending rate") or (f.is_ses() and f.has("throttl")):
        return _SES_THROTTLED
    if f.code == 421 or f.has("throttl"):
        rate_limited = f.enhanced == "4.7.28" or f.has(
            "unusual rate", "rate limit", "rate-limit", "throttl"
        )
        if f.is_google() and (rate_limited or f.enhanced == "4.7.0"):
            return _GMAIL_RATE
        if rate_limited:
            return _RATE_LIMITED
        if f.has("too many connections", "too many concurrent", "connection limit"):
            return _TOO_MANY_CONNECTIONS
        return _SERVICE_UNAVAILABLE
    if f.code is not None and 400 <= f.code < 500 and f.has("greylist", "graylist"):
        return _GREYLISTED
    if f.enhanced in ("4.5.3", "5.5.3") or f.has("too many recipients"):
        return _TOO_MANY_RECIPIENTS
    if f.enhanced == "5.4.5" or f.has("daily user sending limit", "sending limit exceeded"):
        return _GMAIL_DAILY_LIMIT
    return None


def _greylisting(f: _Failure) -> str | None:
    """450/451 4.7.1 with nothing more specific said: the usual greylisting reply."""
    if f.code in (450, 451) and f.enhanced == "4.7.1":
        return _GREYLISTED
    return None


_BLOCKLISTED = (
    "The receiving server rejected the connection or message because the sending IP or domain "
    "is on a blocklist (DNSBL): look it up at the list named in the reply, fix the cause and "
    "request delisting, or send through a provider with a good reputation."
)
_UNAUTHENTICATED_MAIL = (
    "The receiver rejected the mail as unauthenticated (SPF/DKIM/DMARC failed for the From "
    "domain): publish SPF and DKIM (and DMARC) for that domain, or send through a provider "
    "that is authorized for it."
)
_NO_REVERSE_DNS = (
    "The receiver requires reverse DNS (PTR) for the sending IP that matches its host name: "
    "fix PTR for your server's IP, or send through your provider's relay."
)
_RELAY_DENIED = (
    "The server will not relay this mail for you: authenticate (set credentials), or use a "
    "From/recipient domain that this server accepts."
)
_SES_UNVERIFIED = (
    "Amazon SES refused an unverified identity: verify the sender address or domain in SES "
    "(in this region); in the SES sandbox every recipient must be verified as well, until "
    "production access is granted."
)
_SENDER_NOT_OWNED = (
    "The server rejected the sender because the authenticated account does not own it: send "
    "from that account's own address (or an alias it is allowed to use)."
)
_MS_SEND_AS_DENIED = (
    "Microsoft 365 refused to send as this From address: use the authenticated mailbox's own "
    "address, or have an admin grant it Send As permission for that address."
)
_SENDER_NOT_ALLOWED = (
    "The server does not allow this sender: the From/envelope sender must be an address or "
    "domain your account is allowed to send as (verified with your provider)."
)
_CONTENT_REJECTED = (
    "The receiver refused the message as spam or by policy: check the content, links and "
    "attachments, SPF/DKIM alignment, and the sending IP's reputation."
)


def _policy_replies(f: _Failure) -> str | None:
    """5.7.x and friends: blocklists, SPF/DKIM/DMARC, relaying, sender rights, spam."""
    code, enhanced = f.code or 0, f.enhanced or ""
    if _BLOCKLIST.search(f.text) or _is_ms_blocklist(enhanced):
        return _BLOCKLISTED
    if enhanced == "5.7.25":
        return _NO_REVERSE_DNS
    if enhanced in {f"5.7.{n}" for n in range(20, 28)} or f.has("unauthenticated", "dmarc", "spf"):
        return _UNAUTHENTICATED_MAIL
    if code >= 500 and f.has("relay"):
        return _RELAY_DENIED
    if enhanced == "5.7.60" or f.has("sendasdenied", "send as"):
        return _MS_SEND_AS_DENIED
    if f.is_ses() and f.has("not verified"):
        return _SES_UNVERIFIED
    if f.has("not owned", "login mismatch") or (code == 553 and enhanced == "5.7.1"):
        return _SENDER_NOT_OWNED
    if enhanced == "5.7.1" or code == 554:
        if f.has("spam", "unsolicited", "content"):
            return _CONTENT_REJECTED
        if f.stage == "mail" or f.has("sender", "from address", "not verified"):
            return _SENDER_NOT_ALLOWED
        if f.stage == "rcpt" or code == 550:
            return _RELAY_DENIED
        return _CONTENT_REJECTED if f.stage == "data" else None
    return None


def _is_ms_blocklist(enhanced: str) -> bool:
    """Microsoft's 5.7.606-5.7.649 "access denied, banned sending IP" range."""
    prefix, _, detail = enhanced.rpartition(".")
    return prefix == "5.7" and detail.isdigit() and 606 <= int(detail) <= 649


_USER_UNKNOWN = (
    "The recipient address does not exist at that domain: check it for typos and remove it "
    "from your lists (repeated sends to unknown users hurt your sender reputation)."
)
_MAILBOX_FULL = (
    "The recipient's mailbox is full: nothing to fix on your side; try again later or reach "
    "the recipient another way."
)
_TOO_BIG = (
    "The message is larger than the server accepts: shrink or compress the attachments, or "
    "send a link instead (base64 makes attachments about a third larger)."
)


def _mailbox_replies(f: _Failure) -> str | None:
    """Per-mailbox outcomes: unknown user, full mailbox, size."""
    code, enhanced = f.code or 0, f.enhanced or ""
    if enhanced in ("5.1.1", "5.1.10") or (
        code in (550, 551) and f.has("user unknown", "no such user", "does not exist")
    ):
        return _USER_UNKNOWN
    if enhanced in ("5.2.2", "4.2.2") or f.has("mailbox full", "mailbox is full", "over quota"):
        return _MAILBOX_FULL
    if enhanced in ("5.3.4", "5.2.3", "4.3.4") or (
        code == 552 and (f.stage in ("data", "mail") or f.has("size", "too big", "too large"))
    ):
        return _TOO_BIG
    return None


# --------------------------------------------------------------------------------------------
# Failures without a reply (or a reply that said nothing useful): connect, TLS, timeouts.

_PORT_MISMATCH_IMPLICIT = (
    "TLS and STARTTLS are mixed up: {where} expects STARTTLS (plaintext first), so use "
    "tls=starttls (an smtp:// DSN); implicit TLS (smtps://) belongs on port 465."
)
_PORT_MISMATCH_465 = (
    "TLS and STARTTLS are mixed up: port 465 expects TLS from the first byte, so use "
    "tls=implicit (an smtps:// DSN); STARTTLS (smtp://) belongs on port 587."
)
_PORT_MISMATCH_GENERIC = (
    "The TLS mode does not match the port: 465 uses implicit TLS (smtps://, tls=implicit) and "
    "587 uses STARTTLS (smtp://, tls=starttls); check which one {where} speaks."
)
_HOSTNAME_MISMATCH = (
    "The server's certificate is not valid for this host name: connect with the name the "
    "certificate is issued for (not an IP address or alias). Never disable verification in "
    "production."
)
_UNTRUSTED_CERT = (
    "The server's certificate is not signed by a CA this machine trusts (self-signed or "
    "private CA): pass ca_file= with that CA. Never disable verification in production."
)
_EXPIRED_CERT = (
    "The server's certificate has expired (or this machine's clock is wrong): the server must "
    "renew it. Never disable verification in production."
)
_CERT_FAILED = (
    "The server's certificate could not be verified: check the host name and pass ca_file= if "
    "the server uses a private CA. Never disable verification in production."
)
_STARTTLS_MISSING = (
    "The server did not offer STARTTLS, so smtpkit refused to continue in plaintext: on port "
    "465 use tls=implicit (smtps://); otherwise something on the path may be stripping STARTTLS."
)
_CONNECTION_REFUSED = (
    "Nothing accepted the connection at {where}: check the port (465 implicit TLS, 587 "
    "STARTTLS), that the server is running, and that no firewall blocks it."
)
_DNS_FAILURE = (
    "The host name could not be resolved: check the spelling of the host and this machine's DNS."
)
_PORT_25_BLOCKED = (
    "Connections to port 25 timed out: most ISPs and cloud providers (AWS, GCP, Azure) block "
    "outbound port 25, so use the submission port 587 (STARTTLS) or 465 (implicit TLS)."
)
_TIMEOUT_465 = (
    "No answer on port 465: that port expects TLS from the first byte, so use tls=implicit "
    "(an smtps:// DSN), not STARTTLS; if that is already set, check for a firewall."
)
_CONNECT_TIMEOUT = (
    "The connection to {where} timed out: check the host and port, and whether a firewall or "
    "network policy drops outbound SMTP."
)
_NO_COMMON_MECHANISM = (
    "The server offers none of the AUTH mechanisms smtpkit may use with these credentials: "
    "check auth_mechanisms, and note that Gmail and Microsoft 365 accept XOAUTH2 with a token."
)
_PLAINTEXT_AUTH = (
    "smtpkit refuses to send credentials over an unencrypted connection: use tls=starttls "
    "(port 587) or tls=implicit (port 465); only for a trusted local relay set "
    "allow_insecure_auth=true."
)
_NEEDS_SMTPUTF8 = (
    "The server does not offer SMTPUTF8, which a non-ASCII local part (before the @) needs: "
    "use an ASCII address for it, or a server that supports SMTPUTF8 (most large providers do)."
)
_NEEDS_8BITMIME = (
    "The server does not offer 8BITMIME and the data has 8-bit bytes: build the message with "
    "smtpkit's Message (it uses 7-bit transfer encodings) or encode the raw data as 7-bit."
)
_COMMAND_TIMEOUT = (
    "The server at {where} stopped answering in the middle of the conversation: it may be "
    "overloaded or slow to scan the message; raise the command/data timeouts or retry later."
)
_AUTH_NOT_OFFERED = (
    "The server does not offer AUTH on this connection: most servers offer it only after TLS "
    "and on the submission ports 587/465, not on port 25."
)

_TLS_MISMATCH_TEXT = (
    "wrong version number",
    "wrong_version_number",
    "unknown protocol",
    "record layer failure",
    "packet length too long",
)


def _network_hint(f: _Failure) -> str | None:
    """Hints decided by the stage and the error text of a reply-less failure."""
    if f.has(*_TLS_MISMATCH_TEXT):
        return _port_mismatch(f)
    if f.has("certificate", "hostname mismatch", "self-signed", "self signed"):
        return _certificate_hint(f)
    if f.stage == "tls" and f.has("starttls") and f.has("not offer", "not support", "advertis"):
        return _STARTTLS_MISSING
    if f.stage == "auth" and f.has("unencrypted", "plaintext"):
        return _PLAINTEXT_AUTH
    if f.has("needs smtputf8"):
        return _NEEDS_SMTPUTF8
    if f.has("8bitmime"):
        return _NEEDS_8BITMIME
    if f.stage == "auth":
        if f.has("does not offer auth"):
            return _AUTH_NOT_OFFERED
        if f.has("no common", "mechanism"):
            return _NO_COMMON_MECHANISM
        if f.has("not offer", "not support", "not advertis"):
            return _AUTH_NOT_OFFERED
    if f.has("connection refused", "errno 111", "econnrefused", "10061"):
        return _CONNECTION_REFUSED.format(where=f.where)
    if f.has(
        "name or service not known",
        "nodename nor servname",
        "getaddrinfo",
        "name resolution",
        "no address associated",
    ):
        return _DNS_FAILURE
    if f.code is None and f.has("timed out", "timeout", "time out"):
        return _timeout_hint(f)
    return None


def _port_mismatch(f: _Failure) -> str:
    """Explain an implicit-TLS / STARTTLS mix-up in terms of the configured port."""
    if f.port == 465:
        return _PORT_MISMATCH_465
    if f.port in (25, 587, 2525):
        return _PORT_MISMATCH_IMPLICIT.format(where=f"port {f.port}")
    return _PORT_MISMATCH_GENERIC.format(where=f.where)


def _certificate_hint(f: _Failure) -> str:
    """Pick among certificate failures by the verifier's wording."""
    if f.has("hostname mismatch", "doesn't match", "does not match", "not valid for"):
        return _HOSTNAME_MISMATCH
    if f.has("expired"):
        return _EXPIRED_CERT
    if f.has("self-signed", "self signed", "local issuer", "unknown ca", "untrusted"):
        return _UNTRUSTED_CERT
    return _CERT_FAILED


def _timeout_hint(f: _Failure) -> str:
    """Timeouts: blocked port 25, STARTTLS on 465, or a generic network problem."""
    if f.stage in (None, "connect", "greeting"):
        if f.port == 25:
            return _PORT_25_BLOCKED
        if f.port == 465:
            return _TIMEOUT_465
        return _CONNECT_TIMEOUT.format(where=f.where)
    return _COMMAND_TIMEOUT.format(where=f.where)
