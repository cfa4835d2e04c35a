"""DSN parsing and formatting: schemes, credentials, options, groups, presets, round trips."""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from smtpkit._config import (
    KNOWN_AUTH_MECHANISMS,
    Credentials,
    PoolLimits,
    RetryPolicy,
    SMTPConfig,
    Timeouts,
    TLSMode,
)
from smtpkit._dsn import TransportGroup, format_dsn, parse_dsn
from smtpkit._exceptions import ConfigError
from smtpkit._secrets import Secret

PASSWORD = "Tr0ub4dor-3-Secret"


def one(dsn: str) -> SMTPConfig:
    result = parse_dsn(dsn)
    assert isinstance(result, SMTPConfig)
    return result


# -- schemes, hosts, ports ----------------------------------------------------------------------


def test_smtps_is_implicit_tls_on_465() -> None:
    config = one("smtps://user:pass@smtp.example.com:465")
    assert config.tls is TLSMode.IMPLICIT
    assert config.port == 465
    assert config.host == "smtp.example.com"
    assert config.credentials == Credentials("user", Secret("pass"))
    assert one("smtps://smtp.example.com").effective_port == 465


def test_smtp_is_required_starttls_on_587() -> None:
    config = one("smtp://user:pass@smtp.example.com:587")
    assert config.tls is TLSMode.STARTTLS
    assert config.port == 587
    no_port = one("smtp://smtp.example.com")
    assert no_port.port is None
    assert no_port.effective_port == 587
    assert no_port.credentials is None


@pytest.mark.parametrize(
    ("dsn", "tls", "port"),
    [
        ("smtp://relay.example.com:25?tls=opportunistic", TLSMode.STARTTLS_OPPORTUNISTIC, 25),
        ("smtp://127.0.0.1:1025?tls=none", TLSMode.NONE, 1025),
        ("smtp://mail.example.com:2465?tls=implicit", TLSMode.IMPLICIT, 2465),
        ("smtp://mail.example.com?tls=STARTTLS", TLSMode.STARTTLS, None),
        ("smtps://mail.example.com?tls=implicit", TLSMode.IMPLICIT, None),
        ("smtp://mail.example.com:465?tls=starttls", TLSMode.STARTTLS, 465),
        ("smtp://mail.example.com:587?tls=implicit", TLSMode.IMPLICIT, 587),
        ("SMTP://mail.example.com", TLSMode.STARTTLS, None),
    ],
)
def test_tls_option(dsn: str, tls: TLSMode, port: int | None) -> None:
    config = one(dsn)
    assert (config.tls, config.port) == (tls, port)


@pytest.mark.parametrize(
    ("dsn", "host", "port"),
    [
        ("smtp://[::1]:2525", "::1", 2525),
        ("smtp://user:pw@[2001:db8::25]", "2001:db8::25", None),
        ("smtp://127.0.0.1:2525", "127.0.0.1", 2525),
        ("smtp://mail.example.com:2525/", "mail.example.com", 2525),
        ("  smtp://mail.example.com  ", "mail.example.com", None),
    ],
)
def test_hosts(dsn: str, host: str, port: int | None) -> None:
    config = one(dsn)
    assert (config.host, config.port) == (host, port)


# -- credentials --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("userinfo", "username", "password"),
    [
        ("user:pass", "user", "pass"),
        ("ann%40example.com:p%40ss%3Aw%2Frd", "ann@example.com", "p@ss:w/rd"),
        ("ann@example.com:pw", "ann@example.com", "pw"),  # unencoded @ in the user name
        ("ann:pa/ss?x#y", "ann", "pa/ss?x#y"),  # everything up to the last @ is credentials
        ("ann:p%25%20q", "ann", "p% q"),
        ("%C3%A9l%C3%A8ve:m%C3%B8t", "élève", "møt"),
        ("ann:a:b:c", "ann", "a:b:c"),
    ],
)
def test_percent_encoded_credentials(userinfo: str, username: str, password: str) -> None:
    config = one(f"smtps://{userinfo}@mail.example.com")
    assert config.credentials == Credentials(username, Secret(password))


# -- options ----------------------------------------------------------------------------------


def test_every_option() -> None:
    config = one(
        "smtps://u:p@mail.example.com?ca_file=/etc/ca%20file.pem&ca_path=/etc/certs"
        "&client_cert=/c.pem&client_key=/k.pem&min_tls=1.3&timeout=5&data_timeout=60"
        "&ehlo=app.example.com&allow_insecure_auth=true&retries=0&verify=false"
        "&auth=plain,LOGIN&pool_size=8&max_messages_per_connection=20&idle_timeout=2.5"
        "&transcript=yes&max_recipients=50&on_partial_rejection=abort"
    )
    assert config == SMTPConfig(
        host="mail.example.com",
        tls=TLSMode.IMPLICIT,
        credentials=Credentials("u", Secret("p")),
        ca_file="/etc/ca file.pem",
        ca_path="/etc/certs",
        client_cert="/c.pem",
        client_key="/k.pem",
        min_tls_version=ssl.TLSVersion.TLSv1_3,
        timeouts=Timeouts(connect=5, command=5, data=60),
        local_hostname="app.example.com",
        allow_insecure_auth=True,
        retry=RetryPolicy(retries=0),
        verify=False,
        auth_mechanisms=("PLAIN", "LOGIN"),
        pool=PoolLimits(max_connections=8, max_messages_per_connection=20, idle_timeout=2.5),
        transcript=True,
        max_recipients_per_transaction=50,
        on_partial_rejection="abort",
    )


def test_specific_timeout_wins_whatever_the_order() -> None:
    config = one("smtp://h.example?connect_timeout=3&timeout=9")
    assert config.timeouts == Timeouts(connect=3, command=9, data=9)
    assert one("smtp://h.example?command_timeout=4").timeouts == Timeouts(command=4)


def test_max_connections_alias() -> None:
    assert one("smtp://h.example?max_connections=2").pool.max_connections == 2


def test_retries() -> None:
    assert one("smtp://h.example?retries=0").retry.retries == 0
    assert one("smtp://h.example?retries=5").retry.retries == 5
    assert one("smtp://h.example").retry.retries == 2


def test_insecure_auth_opt_in() -> None:
    config = one("smtp://u:p@127.0.0.1:1025?tls=none&allow_insecure_auth=true")
    assert config.tls is TLSMode.NONE
    assert config.allow_insecure_auth is True


def test_opportunistic_with_credentials_is_accepted() -> None:
    config = one("smtp://u:p@relay.example.com:25?tls=opportunistic")
    assert config.credentials is not None


@pytest.mark.parametrize(
    ("dsn", "match"),
    [
        ("smtp://h.example?colour=blue", "colour: unknown"),
        ("smtp://h.example?ehlo=bad%20name", "ehlo"),
        ("smtp://h.example?ehlo=a%0D%0AMAIL", "ehlo"),
        ("smtp://h.example:0", "port"),
        ("smtp://h.example:65536", "port"),
        ("smtp://h.example:smtp", "port"),
        ("smtp://h.example:", "port"),
        ("smtp://h.example:+25", "port"),
        ("smtp://h.example:٢٥", "port"),
        ("smtp://u:p@h.example?tls=none", "allow_insecure_auth"),
        ("smtp://u:p@h.example?tls=none&allow_insecure_auth=false", "allow_insecure_auth"),
        ("smtp://h.example?tls=sometimes", "unknown mode 'sometimes'"),
        ("smtps://h.example?tls=starttls", "smtps:// means implicit"),
        ("smtp://h.example:465", "port 465 is for implicit TLS"),
        ("smtps://h.example:587", "port 587 is for STARTTLS"),
        ("smtp://h.example/path", "path"),
        ("smtp://h.example#frag", "'#'"),
        ("smtp://h.example?timeout=0", "timeout"),
        ("smtp://h.example?timeout=-1", "timeout"),
        ("smtp://h.example?timeout=inf", "timeout"),
        ("smtp://h.example?timeout=nan", "timeout"),
        ("smtp://h.example?timeout=1_0", "timeout"),
        ("smtp://h.example?retries=-1", "retries"),
        ("smtp://h.example?retries=two", "retries"),
        ("smtp://h.example?pool_size=0", "max_connections"),
        ("smtp://h.example?pool_size=2&max_connections=3", "only one"),
        ("smtp://h.example?max_recipients=0", "max_recipients"),
        ("smtp://h.example?auth=GSSAPI", "unknown mechanism"),
        ("smtp://h.example?auth=", "empty"),
        ("smtp://h.example?min_tls=1.1", "1.2 or 1.3"),
        ("smtp://h.example?verify=maybe", "true or false"),
        ("smtp://h.example?on_partial_rejection=drop", "deliver or abort"),
        ("smtp://h.example?ca_file=", "empty"),
        ("smtp://h.example?client_key=/k.pem", "client_key"),
        ("smtp://h.example?tls=none&tls=none", "twice"),
        ("smtp://h.example?transcript", "has no value"),
        ("smtp://h.example?region=eu-west-1", "region"),
        ("smtp://h.example?ehlo=%FF", "UTF-8"),
        ("smtp://u:p@h.example?auth=XOAUTH2", "can be used"),
        ("h.example", "must start with"),
        ("mailto:ann@example.com", "must start with"),
        ("smtp://", "no host"),
        ("smtp://u:p@", "no host"),
        ("smtp://u:p@:25", "no host"),
        ("smtp://::1", "brackets"),
        ("smtp://[::1", "without ']'"),
        ("smtp://[::1]x", "after the IPv6"),
        ("smtp://[nope]", "only for IPv6"),
        ("smtp://[127.0.0.1]", "only for IPv6"),
        ("smtp://[zz::1]", "IPv6"),
        ("smtp://bad_host!.example", "host"),
        ("smtp://user@h.example", "without a password"),
        ("smtp://:pw@h.example", "empty user name"),
        ("smtp://user:@h.example", "empty password"),
        ("smtp://h.example extra", "space"),
        ("smtp://h.exa\tmple", "control character"),
        ("", "empty"),
        ("   ", "empty"),
        ("nosuchprovider://u:p@default", "unknown scheme 'nosuchprovider'"),
    ],
)
def test_invalid_dsns(dsn: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_dsn(dsn)


def test_from_dsn_requires_a_string() -> None:
    with pytest.raises(ConfigError, match="string"):
        parse_dsn(b"smtp://h.example")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "dsn",
    [
        f"smtp://ann:{PASSWORD}@127.0.0.1?tls=none",
        f"smtp://ann:{PASSWORD}@h.example:99999",
        f"smtp://ann:{PASSWORD}@h.example?colour=blue",
        f"smtp://ann:{PASSWORD}@h.example?ehlo=bad%20name",
        f"smtp://ann:{PASSWORD}@h.example/path",
        f"smtp://ann:{PASSWORD}@h.example:465",
        f"smtp://ann:{PASSWORD}@::1",
        f"smtp://ann:{PASSWORD}@h.example extra",
        f"smtp://ann:{PASSWORD}\n@h.example",
        f"smtp://ann:{PASSWORD}%FF@h.example",
        f"smtp://ann:{PASSWORD}@h.example?auth=XOAUTH2",
        f"gmail://ann:{PASSWORD}@smtp.gmail.com",
        f"ses://ann:{PASSWORD}@default",
        f"nope://ann:{PASSWORD}@default",
        f"ann:{PASSWORD}@h.example",
        f"failover(smtp://ann:{PASSWORD}@h.example smtp://b:{PASSWORD}@h.example:0)",
        f"failover(smtp://ann:{PASSWORD}@h.example",
        f"smtp://ann:{PASSWORD[:6]}/{PASSWORD[6:]}@h.example:bad",  # unencoded '/'
        f"smtp://ann:{PASSWORD[:6]}?{PASSWORD[6:]}@h.example:bad",  # unencoded '?'
        f"smtp://ann:{PASSWORD[:6]}#{PASSWORD[6:]}@h.example:bad",  # unencoded '#'
    ],
)
def test_error_messages_never_contain_the_password(dsn: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_dsn(dsn)
    message = str(info.value)
    assert PASSWORD not in message
    assert PASSWORD[:6] not in message
    assert PASSWORD[6:] not in message


@given(
    password=st.from_regex(r"[A-Za-z0-9]{12,20}", fullmatch=True),
    location=st.text(max_size=30),
)
def test_no_error_message_shows_the_password(password: str, location: str) -> None:
    assume(password not in location)
    try:
        parse_dsn(f"smtp://ann:{password}@{location}")
    except ConfigError as exc:
        message = str(exc)
    else:
        return
    assert password not in message


@given(st.text(max_size=80))
def test_arbitrary_text_parses_or_raises_config_error(text: str) -> None:
    try:
        result = parse_dsn(text)
    except ConfigError:
        return
    assert isinstance(result, (SMTPConfig, TransportGroup))


# -- groups -------------------------------------------------------------------------------------


def test_failover_group() -> None:
    group = parse_dsn("failover(smtps://u:p@a.example  smtp://b.example:2525?tls=none)")
    assert isinstance(group, TransportGroup)
    assert group.kind == "failover"
    assert [c.host for c in group.configs] == ["a.example", "b.example"]
    assert group.configs[1].tls is TLSMode.NONE
    assert (
        group.redacted_dsn() == "failover(smtps://u:***@a.example smtp://b.example:2525?tls=none)"
    )
    assert parse_dsn(group.to_dsn(reveal=True)) == group


def test_roundrobin_group() -> None:
    group = parse_dsn("roundrobin(gmail://a%40gmail.com:pw@default smtp://b.example)")
    assert isinstance(group, TransportGroup)
    assert group.kind == "roundrobin"
    assert group.configs[0].host == "smtp.gmail.com"


@pytest.mark.parametrize(
    ("dsn", "match"),
    [
        ("failover()", "at least one"),
        ("failover(   )", "at least one"),
        ("failover(smtp://a.example", "must end with"),
        ("failover(roundrobin(smtp://a.example) smtp://b.example)", "nested"),
        ("failover(smtp://a.example smtp://b.example:0)", "DSN 2: DSN: port"),
    ],
)
def test_invalid_groups(dsn: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_dsn(dsn)


def test_from_dsn_refuses_groups_with_directions() -> None:
    with pytest.raises(ConfigError, match=r"AsyncMailer\.from_dsn"):
        SMTPConfig.from_dsn("failover(smtp://a.example smtp://b.example)")


def test_transport_group_validates() -> None:
    with pytest.raises(ConfigError):
        TransportGroup("failover", ())
    with pytest.raises(ConfigError):
        TransportGroup("random", (SMTPConfig(),))  # type: ignore[arg-type]


# -- provider schemes -------------------------------------------------------------------------


def test_provider_scheme_with_credentials() -> None:
    config = one("gmail://me%40gmail.com:app-password@default")
    assert config.host == "smtp.gmail.com"
    assert config.tls is TLSMode.IMPLICIT
    assert config.effective_port == 465
    assert config.credentials == Credentials("me@gmail.com", Secret("app-password"))


def test_provider_scheme_alias_and_options() -> None:
    config = one("microsoft365://me%40corp.example:pw@DEFAULT?timeout=5&retries=0")
    assert config.host == "smtp.office365.com"
    assert config.timeouts == Timeouts.uniform(5)
    assert config.retry.retries == 0


def test_provider_scheme_with_region() -> None:
    config = one("ses://AKIAEXAMPLE:pw@default?region=eu-west-1")
    assert config.host == "email-smtp.eu-west-1.amazonaws.com"


def test_provider_scheme_port_override() -> None:
    config = one("gmail://me:pw@default:587?tls=starttls")
    assert (config.port, config.tls) == (587, TLSMode.STARTTLS)
    with pytest.raises(ConfigError, match="port 587 is for STARTTLS"):
        parse_dsn("gmail://me:pw@default:587")


def test_provider_scheme_needs_default_host() -> None:
    with pytest.raises(ConfigError, match="host 'default'"):
        parse_dsn("gmail://me:pw@smtp.gmail.com")


def test_provider_scheme_without_credentials() -> None:
    config = one("google-workspace://default")
    assert config.host == "smtp-relay.gmail.com"
    assert config.credentials is None


# -- formatting and round trips ---------------------------------------------------------------


@pytest.mark.parametrize(
    "dsn",
    [
        "smtp://mail.example.com",
        "smtps://u:p@mail.example.com:465",
        "smtp://u%40example.com:p%40ss%20w@mail.example.com:587",
        "smtp://[::1]:2525?tls=none",
        "smtp://127.0.0.1:1025?tls=opportunistic",
        "smtp://mail.example.com:465?tls=starttls",
        "smtps://mail.example.com:587?tls=implicit",
        "smtp://h.example?ehlo=%5BIPv6:2001:db8::1%5D",
        "smtp://h.example?auth=PLAIN,LOGIN&timeout=5&retries=0&max_connections=8",
        "smtp://h.example?connect_timeout=2.5&data_timeout=300",
        "smtp://h.example?ca_file=/etc/ssl/my%20ca.pem&min_tls=1.3&verify=false",
        "smtp://u:p@127.0.0.1?tls=none&allow_insecure_auth=true&transcript=true",
        "smtp://h.example?max_messages_per_connection=5&idle_timeout=0.5&max_recipients=10"
        "&on_partial_rejection=abort",
    ],
)
def test_canonical_dsns_round_trip_exactly(dsn: str) -> None:
    config = one(dsn)
    assert config.to_dsn(reveal=True) == dsn
    assert one(config.to_dsn(reveal=True)) == config


def test_redacted_dsn() -> None:
    config = one("smtps://ann:hunter2@mail.example.com?timeout=5")
    redacted = config.redacted_dsn()
    assert redacted == "smtps://ann:***@mail.example.com?timeout=5"
    assert config.to_dsn() == redacted
    back = one(redacted)
    assert back.credentials == Credentials("ann", Secret("***"))
    assert back.replace(credentials=config.credentials) == config


def test_to_dsn_refuses_to_lose_settings_when_revealing() -> None:
    with_context = SMTPConfig(ssl_context=ssl.create_default_context())
    with pytest.raises(ConfigError, match="ssl_context"):
        with_context.to_dsn(reveal=True)
    assert with_context.redacted_dsn() == "smtp://localhost"

    with_token = SMTPConfig(credentials=Credentials("ann", token=lambda: "tok"))
    with pytest.raises(ConfigError, match="token"):
        with_token.to_dsn(reveal=True)
    assert with_token.redacted_dsn() == "smtp://ann@localhost"

    with_backoff = SMTPConfig(retry=RetryPolicy(initial_backoff=1))
    with pytest.raises(ConfigError, match="retry backoff"):
        format_dsn(with_backoff, reveal=True)


# -- hypothesis round trip --------------------------------------------------------------------

_label = r"[a-z0-9](?:[a-z0-9-]{0,8}[a-z0-9])?"
hosts = st.one_of(
    st.from_regex(rf"{_label}(?:\.{_label}){{0,3}}", fullmatch=True),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(str),
)
secrets_text = st.text(
    st.characters(codec="utf-8", exclude_characters="\x00\r\n"),
    min_size=1,
    max_size=30,
)
paths = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cc", "Zl", "Zp"]), min_size=1, max_size=30
)
seconds = st.floats(min_value=1e-3, max_value=1e7, allow_nan=False, allow_infinity=False)


@st.composite
def configs(draw: st.DrawFn) -> SMTPConfig:
    fields: dict[str, Any] = {
        "host": draw(hosts),
        "port": draw(st.none() | st.integers(1, 65535)),
        "tls": draw(st.sampled_from(TLSMode)),
    }
    if draw(st.booleans()):
        fields["credentials"] = Credentials(draw(secrets_text), Secret(draw(secrets_text)))
        fields["allow_insecure_auth"] = draw(st.booleans())
        mechanisms = st.sampled_from(["PLAIN", "LOGIN", "CRAM-MD5"])
        extra = st.lists(st.sampled_from(sorted(KNOWN_AUTH_MECHANISMS)), max_size=4)
        fields["auth_mechanisms"] = tuple(
            dict.fromkeys([*draw(extra), draw(mechanisms), *draw(extra)])
        )
    if draw(st.booleans()):
        fields["local_hostname"] = draw(
            st.from_regex(rf"{_label}(?:\.{_label}){{0,2}}", fullmatch=True)
        )
    if draw(st.booleans()):
        fields["timeouts"] = Timeouts(draw(seconds), draw(seconds), draw(seconds))
    if draw(st.booleans()):
        fields["timeouts"] = Timeouts.uniform(draw(seconds))
    for name in ("ca_file", "ca_path", "client_cert"):
        if draw(st.booleans()):
            fields[name] = draw(paths)
    if "client_cert" in fields and draw(st.booleans()):
        fields["client_key"] = draw(paths)
    if draw(st.booleans()):
        fields["min_tls_version"] = ssl.TLSVersion.TLSv1_3
    fields["verify"] = draw(st.booleans())
    fields["transcript"] = draw(st.booleans())
    fields["retry"] = RetryPolicy(retries=draw(st.integers(0, 20)))
    fields["pool"] = PoolLimits(
        max_connections=draw(st.integers(1, 64)),
        max_messages_per_connection=draw(st.integers(1, 10_000)),
        idle_timeout=draw(seconds),
    )
    fields["max_recipients_per_transaction"] = draw(st.integers(1, 5000))
    fields["on_partial_rejection"] = draw(st.sampled_from(["deliver", "abort"]))
    if "credentials" in fields and fields["tls"] is TLSMode.NONE:
        fields["allow_insecure_auth"] = True
    return SMTPConfig(**fields)


@given(configs())
def test_dsn_round_trip(config: SMTPConfig) -> None:
    dsn = config.to_dsn(reveal=True)
    parsed = parse_dsn(dsn)
    assert parsed == config
    assert isinstance(parsed, SMTPConfig)
    assert parsed.to_dsn(reveal=True) == dsn


@given(configs())
def test_redacted_round_trip(config: SMTPConfig) -> None:
    redacted = config.redacted_dsn()
    parsed = one(redacted)
    if config.credentials is None:
        assert parsed == config
        return
    assert parsed.credentials == Credentials(config.credentials.username, Secret("***"))
    assert parsed.replace(credentials=config.credentials) == config


@given(user=secrets_text, password=secrets_text, host=hosts)
def test_credentials_round_trip_through_percent_encoding(
    user: str, password: str, host: str
) -> None:
    bracketed = f"[{host}]" if ":" in host else host
    dsn = f"smtps://{quote(user, safe='')}:{quote(password, safe='')}@{bracketed}"
    config = one(dsn)
    assert config.credentials == Credentials(user, Secret(password))
    assert config.host == host
