"""SMTPConfig, Credentials, Secret and the other configuration values; from_env."""

from __future__ import annotations

import dataclasses
import ssl
from pathlib import Path

import pytest
import trustme
from hypothesis import assume, given
from hypothesis import strategies as st

from smtpkit._config import (
    DEFAULT_AUTH_MECHANISMS,
    Credentials,
    PoolLimits,
    RetryPolicy,
    SMTPConfig,
    Timeouts,
    TLSMode,
    check_ehlo_name,
    check_host,
)
from smtpkit._dsn import TransportGroup, config_from_env
from smtpkit._exceptions import ConfigError
from smtpkit._secrets import Secret

# Passwords as users write them: anything but NUL, CR and LF (refused on purpose).
passwords = st.text(
    st.characters(codec="utf-8", exclude_characters="\x00\r\n"),
    min_size=1,
    max_size=40,
)


# -- Secret -------------------------------------------------------------------------------------


def test_secret_never_prints_its_value() -> None:
    secret = Secret("hunter2")
    assert repr(secret) == "***"
    assert str(secret) == "***"
    assert f"{secret}|{secret!r}|{secret:>5}" == "***|***|  ***"
    assert "hunter2" not in repr([secret, {"k": secret}])
    assert secret.reveal() == "hunter2"


def test_secret_equality_and_hash_follow_the_value() -> None:
    assert Secret("a") == Secret("a")
    assert Secret("a") != Secret("b")
    assert Secret("a") != "a"
    assert hash(Secret("a")) == hash(Secret("a"))
    assert len({Secret("a"), Secret("a"), Secret("b")}) == 2


def test_secret_rejects_non_strings_and_unwraps_secrets() -> None:
    with pytest.raises(TypeError):
        Secret(b"bytes")  # type: ignore[arg-type]
    assert Secret(Secret("x")).reveal() == "x"  # type: ignore[arg-type]


def test_secret_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Secret("x")._value = "y"  # type: ignore[misc]


# -- Credentials ------------------------------------------------------------------------------


def test_credentials_repr_shows_username_not_password() -> None:
    creds = Credentials("ann@example.com", Secret("pa55word"))
    assert repr(creds) == "Credentials(username='ann@example.com', password=***)"
    assert "pa55word" not in str(creds)


def test_credentials_wrap_a_plain_string_password() -> None:
    creds = Credentials("ann", "pw")  # type: ignore[arg-type]
    assert isinstance(creds.password, Secret)
    assert creds.password.reveal() == "pw"
    assert creds == Credentials("ann", Secret("pw"))


def test_credentials_with_token_provider() -> None:
    def token() -> str:
        return "ya29.secret-token"

    creds = Credentials("ann@example.com", token=token)
    assert repr(creds) == "Credentials(username='ann@example.com', token=<provider>)"
    assert "ya29" not in repr(SMTPConfig(host="mail.example.com", credentials=creds))


@pytest.mark.parametrize(
    ("username", "password", "message"),
    [
        ("", "pw", "username: empty"),
        ("a\r\nMAIL FROM:<x>", "pw", "username"),
        ("a\x00b", "pw", "username"),
        ("ann", "", "password: empty"),
    ],
)
def test_credentials_refuse_unsafe_values(username: str, password: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Credentials(username, Secret(password))


@pytest.mark.parametrize("bad", ["pw\r\nQUIT", "pw\x00authz", "line\n"])
def test_credentials_refuse_control_password_without_showing_it(bad: str) -> None:
    with pytest.raises(ConfigError) as info:
        Credentials("ann", Secret(bad))
    assert bad.strip() not in str(info.value)
    assert "not shown" in str(info.value)


def test_credentials_need_a_password_or_a_token() -> None:
    with pytest.raises(ConfigError, match="password or a token"):
        Credentials("ann")
    with pytest.raises(ConfigError, match="callable"):
        Credentials("ann", token="not-callable")  # type: ignore[arg-type]


# -- SMTPConfig: defaults and derived values ----------------------------------------------------


def test_defaults_are_secure() -> None:
    config = SMTPConfig()
    assert config.tls is TLSMode.STARTTLS
    assert config.verify is True
    assert config.allow_insecure_auth is False
    assert config.min_tls_version is ssl.TLSVersion.TLSv1_2
    assert config.auth_mechanisms == DEFAULT_AUTH_MECHANISMS
    assert config.timeouts == Timeouts(10.0, 30.0, 120.0)
    assert config.pool == PoolLimits(4, 100, 30.0)
    assert config.retry.retries == 2
    assert config.max_recipients_per_transaction == 100
    assert config.on_partial_rejection == "deliver"


@pytest.mark.parametrize(
    ("tls", "port", "expected"),
    [
        (TLSMode.IMPLICIT, None, 465),
        (TLSMode.STARTTLS, None, 587),
        (TLSMode.STARTTLS_OPPORTUNISTIC, None, 25),
        (TLSMode.NONE, None, 25),
        (TLSMode.IMPLICIT, 2465, 2465),
    ],
)
def test_effective_port(tls: TLSMode, port: int | None, expected: int) -> None:
    assert SMTPConfig(host="mail.example.com", tls=tls, port=port).effective_port == expected


def test_tls_given_as_string_is_coerced() -> None:
    config = SMTPConfig(tls="implicit")  # type: ignore[arg-type]
    assert config.tls is TLSMode.IMPLICIT
    with pytest.raises(ConfigError, match="unknown mode 'sometimes'"):
        SMTPConfig(tls="sometimes")  # type: ignore[arg-type]


@pytest.mark.parametrize("port", [0, 65536, -1, True, "25", 25.0])
def test_port_must_be_in_range(port: object) -> None:
    with pytest.raises(ConfigError, match="port"):
        SMTPConfig(port=port)  # type: ignore[arg-type]


@pytest.mark.parametrize("port", [1, 25, 465, 587, 2525, 65535])
def test_valid_ports(port: int) -> None:
    assert SMTPConfig(port=port).port == port


@pytest.mark.parametrize(
    "host",
    ["", "mail example.com", "mail\r\n.example.com", "a/b", "a@b", "::zz", "fe80::1%eth0", "a..b"],
)
def test_bad_hosts(host: str) -> None:
    with pytest.raises(ConfigError, match="host"):
        SMTPConfig(host=host)


def test_hosts_accepted_and_normalised() -> None:
    assert SMTPConfig(host="[::1]").host == "::1"
    assert SMTPConfig(host="2001:db8::1").host == "2001:db8::1"
    assert SMTPConfig(host="127.0.0.1").host == "127.0.0.1"
    assert SMTPConfig(host="smtp.example.com.").host == "smtp.example.com."
    assert check_host("bücher.example") == "bücher.example"


@pytest.mark.parametrize(
    "name",
    ["localhost", "mail.example.com", "a-b.example", "[192.0.2.1]", "[IPv6:2001:db8::1]", "x1"],
)
def test_good_ehlo_names(name: str) -> None:
    assert SMTPConfig(local_hostname=name).local_hostname == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "bad name",
        "host\r\nMAIL FROM:<a@b>",
        "-leading.example",
        "trailing-.example",
        "under_score.example",
        "a..b",
        "[300.1.1.1]",
        "[IPv6:zz::1]",
        "x" * 64,
        "tab\there",
    ],
)
def test_bad_ehlo_names(name: str) -> None:
    with pytest.raises(ConfigError, match="ehlo"):
        SMTPConfig(local_hostname=name)


def test_ehlo_error_escapes_control_characters() -> None:
    with pytest.raises(ConfigError) as info:
        check_ehlo_name("a\r\nb")
    assert "\r" not in str(info.value)
    assert "\\r\\n" in str(info.value)


def test_auth_mechanisms_are_normalised_and_checked() -> None:
    config = SMTPConfig(auth_mechanisms=("plain", "LOGIN", "Plain"))
    assert config.auth_mechanisms == ("PLAIN", "LOGIN")
    assert SMTPConfig(auth_mechanisms=["cram-md5"]).auth_mechanisms == ("CRAM-MD5",)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown mechanism 'GSSAPI'"):
        SMTPConfig(auth_mechanisms=("PLAIN", "GSSAPI"))
    with pytest.raises(ConfigError, match="empty"):
        SMTPConfig(auth_mechanisms=())


def test_mechanisms_must_fit_the_credentials() -> None:
    password = Credentials("ann", Secret("pw"))
    with pytest.raises(ConfigError, match="token provider needs XOAUTH2"):
        SMTPConfig(credentials=password, auth_mechanisms=("XOAUTH2", "OAUTHBEARER"))
    token = Credentials("ann", token=lambda: "t")
    with pytest.raises(ConfigError, match="can be used"):
        SMTPConfig(credentials=token, auth_mechanisms=("PLAIN",))
    assert SMTPConfig(credentials=token).credentials == token


@pytest.mark.parametrize(
    "make",
    [
        lambda: Timeouts(connect=0),
        lambda: Timeouts(command=-1),
        lambda: Timeouts(data=float("inf")),
        lambda: Timeouts(data=float("nan")),
        lambda: Timeouts(connect="5"),  # type: ignore[arg-type]
        lambda: PoolLimits(max_connections=0),
        lambda: PoolLimits(max_messages_per_connection=1.5),  # type: ignore[arg-type]
        lambda: PoolLimits(idle_timeout=0),
        lambda: RetryPolicy(retries=-1),
        lambda: RetryPolicy(initial_backoff=0),
        lambda: RetryPolicy(initial_backoff=2, max_backoff=1),
        lambda: RetryPolicy(jitter=1),  # type: ignore[arg-type]
        lambda: SMTPConfig(max_recipients_per_transaction=0),
        lambda: SMTPConfig(on_partial_rejection="maybe"),  # type: ignore[arg-type]
        lambda: SMTPConfig(verify="no"),  # type: ignore[arg-type]
        lambda: SMTPConfig(timeouts=5),  # type: ignore[arg-type]
        lambda: SMTPConfig(credentials=("u", "p")),  # type: ignore[arg-type]
        lambda: SMTPConfig(min_tls_version=ssl.TLSVersion.TLSv1_1),
        lambda: SMTPConfig(client_key="key.pem"),
        lambda: SMTPConfig(ca_file=""),
    ],
)
def test_invalid_values_are_config_errors(make: object) -> None:
    with pytest.raises(ConfigError):
        make()  # type: ignore[operator]


def test_timeouts_uniform() -> None:
    assert Timeouts.uniform(7) == Timeouts(7, 7, 7)


def test_paths_accept_pathlike(tmp_path: Path) -> None:
    assert SMTPConfig(ca_file=tmp_path / "ca.pem").ca_file == str(tmp_path / "ca.pem")  # type: ignore[arg-type]


# -- the TLS / AUTH safety rule --------------------------------------------------------------


def test_credentials_without_tls_need_explicit_opt_in() -> None:
    creds = Credentials("ann", Secret("s3cret-pw"))
    with pytest.raises(ConfigError, match="allow_insecure_auth") as info:
        SMTPConfig(host="127.0.0.1", tls=TLSMode.NONE, credentials=creds)
    assert "s3cret-pw" not in str(info.value)
    config = SMTPConfig(
        host="127.0.0.1", tls=TLSMode.NONE, credentials=creds, allow_insecure_auth=True
    )
    assert config.allow_insecure_auth


def test_opportunistic_with_credentials_is_accepted() -> None:
    # It may end up in plaintext, in which case the transport refuses AUTH at send time
    # unless allow_insecure_auth; the configuration itself is legitimate.
    config = SMTPConfig(
        tls=TLSMode.STARTTLS_OPPORTUNISTIC, credentials=Credentials("a", Secret("b"))
    )
    assert config.tls is TLSMode.STARTTLS_OPPORTUNISTIC


def test_plaintext_without_credentials_is_accepted() -> None:
    assert SMTPConfig(host="127.0.0.1", tls=TLSMode.NONE).credentials is None


# -- repr, equality, hashing, replace --------------------------------------------------------


@given(password=passwords)
def test_repr_never_contains_the_password(password: str) -> None:
    def make(secret: str) -> SMTPConfig:
        return SMTPConfig(host="mail.example.com", credentials=Credentials("ann", Secret(secret)))

    config, reference = make(password), make("placeholder")
    # Whatever the password, every printed form is the same as with another password.
    assert repr(config) == repr(reference)
    assert str(config) == str(reference)
    assert config.redacted_dsn() == reference.redacted_dsn()
    assert repr(config.credentials) == repr(reference.credentials)
    assume(password not in repr(reference) and password not in reference.redacted_dsn())
    assert password not in repr(config)
    assert password not in config.redacted_dsn()


def test_equality_ignores_ssl_context_and_config_is_hashable() -> None:
    context = ssl.create_default_context()
    a = SMTPConfig(host="a.example", ssl_context=context)
    b = SMTPConfig(host="a.example")
    assert a == b
    assert hash(a) == hash(b)
    assert SMTPConfig(host="a.example") != SMTPConfig(host="b.example")


def test_config_is_frozen_and_replace_revalidates() -> None:
    config = SMTPConfig(host="a.example")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.host = "b.example"  # type: ignore[misc]
    assert config.replace(port=2525).port == 2525
    with pytest.raises(ConfigError):
        config.replace(port=0)


# -- create_ssl_context ----------------------------------------------------------------------


def test_default_context_verifies() -> None:
    context = SMTPConfig().create_ssl_context()
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2


def test_verify_false_is_an_explicit_opt_out() -> None:
    context = SMTPConfig(verify=False).create_ssl_context()
    assert context.verify_mode == ssl.CERT_NONE
    assert context.check_hostname is False


def test_min_tls_13() -> None:
    config = SMTPConfig(min_tls_version=ssl.TLSVersion.TLSv1_3)
    assert config.create_ssl_context().minimum_version == ssl.TLSVersion.TLSv1_3


def test_user_context_is_returned_as_is() -> None:
    context = ssl.create_default_context()
    assert SMTPConfig(ssl_context=context).create_ssl_context() is context


@pytest.mark.parametrize(
    "extra",
    [
        {"ca_file": "ca.pem"},
        {"verify": False},
        {"client_cert": "c.pem"},
        {"min_tls_version": ssl.TLSVersion.TLSv1_3},
    ],
)
def test_user_context_conflicts_with_other_tls_options(extra: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match="on the context itself"):
        SMTPConfig(ssl_context=ssl.create_default_context(), **extra)  # type: ignore[arg-type]


def test_ca_file_replaces_the_system_store(tmp_path: Path) -> None:
    ca = trustme.CA()
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    context = SMTPConfig(ca_file=str(path)).create_ssl_context()
    assert len(context.get_ca_certs()) == 1
    assert context.verify_mode == ssl.CERT_REQUIRED


def test_client_certificate_is_loaded(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("client.example")
    path = tmp_path / "client.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(path))
    context = SMTPConfig(client_cert=str(path)).create_ssl_context()
    assert context.verify_mode == ssl.CERT_REQUIRED


def test_missing_ca_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ca_file"):
        SMTPConfig(ca_file=str(tmp_path / "missing.pem")).create_ssl_context()
    with pytest.raises(ConfigError, match="client_cert"):
        SMTPConfig(client_cert=str(tmp_path / "missing.pem")).create_ssl_context()


def test_each_call_builds_a_new_context() -> None:
    config = SMTPConfig()
    assert config.create_ssl_context() is not config.create_ssl_context()


# -- from_env ---------------------------------------------------------------------------------


def test_from_env_dsn() -> None:
    config = SMTPConfig.from_env({"SMTPKIT_DSN": "smtps://ann:pw@mail.example.com"})
    assert config.host == "mail.example.com"
    assert config.tls is TLSMode.IMPLICIT
    assert config.credentials == Credentials("ann", Secret("pw"))


def test_from_env_variables() -> None:
    config = SMTPConfig.from_env(
        {
            "SMTPKIT_HOST": "127.0.0.1",
            "SMTPKIT_PORT": "1025",
            "SMTPKIT_TLS": "none",
            "SMTPKIT_USERNAME": "ann",
            "SMTPKIT_PASSWORD": "pw",
            "SMTPKIT_ALLOW_INSECURE_AUTH": "true",
            "SMTPKIT_TIMEOUT": "2.5",
            "SMTPKIT_EHLO": "app.example",
            "SMTPKIT_CA_FILE": "/etc/ca.pem",
            "UNRELATED": "x",
        }
    )
    assert config == SMTPConfig(
        host="127.0.0.1",
        port=1025,
        tls=TLSMode.NONE,
        credentials=Credentials("ann", Secret("pw")),
        allow_insecure_auth=True,
        timeouts=Timeouts.uniform(2.5),
        local_hostname="app.example",
        ca_file="/etc/ca.pem",
    )


def test_from_env_provider() -> None:
    config = SMTPConfig.from_env(
        {
            "SMTPKIT_PROVIDER": "ses",
            "SMTPKIT_REGION": "eu-west-1",
            "SMTPKIT_USERNAME": "AKIAEXAMPLE",
            "SMTPKIT_PASSWORD": "pw",
        }
    )
    assert config.host == "email-smtp.eu-west-1.amazonaws.com"
    assert config.credentials is not None
    assert config.credentials.username == "AKIAEXAMPLE"


def test_from_env_uses_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMTPKIT_DSN", "smtp://env.example")
    assert SMTPConfig.from_env().host == "env.example"


def test_from_env_nothing_set_lists_what_to_set() -> None:
    with pytest.raises(ConfigError) as info:
        SMTPConfig.from_env({"SMTPKIT_USERNAME": "ann", "SMTPKIT_HOST": ""})
    message = str(info.value)
    for name in ("SMTPKIT_DSN", "SMTPKIT_HOST", "SMTPKIT_PORT", "SMTPKIT_PROVIDER", "SMTPKIT_TLS"):
        assert name in message


@pytest.mark.parametrize(
    ("environ", "match"),
    [
        ({"SMTPKIT_DSN": "smtp://a.example", "SMTPKIT_HOST": "b.example"}, "one or the other"),
        ({"SMTPKIT_HOST": "a.example", "SMTPKIT_PORT": "x25"}, "SMTPKIT_PORT"),
        ({"SMTPKIT_HOST": "a.example", "SMTPKIT_PORT": "465"}, "SMTPKIT_TLS"),
        ({"SMTPKIT_HOST": "a.example", "SMTPKIT_TLS": "maybe"}, "SMTPKIT_TLS"),
        ({"SMTPKIT_HOST": "a.example", "SMTPKIT_TIMEOUT": "soon"}, "SMTPKIT_TIMEOUT"),
        ({"SMTPKIT_HOST": "a.example", "SMTPKIT_ALLOW_INSECURE_AUTH": "si"}, "INSECURE"),
        ({"SMTPKIT_HOST": "a.example", "SMTPKIT_USERNAME": "ann"}, "SMTPKIT_PASSWORD is not"),
        ({"SMTPKIT_HOST": "a.example", "SMTPKIT_PASSWORD": "pw1"}, "SMTPKIT_USERNAME is not"),
        ({"SMTPKIT_HOST": "a.example", "SMTPKIT_REGION": "eu-west-1"}, "SMTPKIT_PROVIDER"),
        ({"SMTPKIT_HOST": "a.example", "SMTPKIT_EHLO": "bad name"}, "ehlo"),
        ({"SMTPKIT_PROVIDER": "nope"}, "unknown provider"),
        ({"SMTPKIT_DSN": "smtp://a.example?tls=maybe"}, "SMTPKIT_DSN: DSN option tls"),
        ({"SMTPKIT_DSN": "failover(smtp://a.example smtp://b.example)"}, "AsyncMailer.from_dsn"),
    ],
)
def test_from_env_errors(environ: dict[str, str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        SMTPConfig.from_env(environ)


def test_from_env_errors_never_show_the_password() -> None:
    environ = {
        "SMTPKIT_HOST": "127.0.0.1",
        "SMTPKIT_TLS": "none",
        "SMTPKIT_USERNAME": "ann",
        "SMTPKIT_PASSWORD": "Very-Secret-77",
    }
    with pytest.raises(ConfigError) as info:
        SMTPConfig.from_env(environ)
    assert "Very-Secret-77" not in str(info.value)
    with pytest.raises(ConfigError) as info:
        SMTPConfig.from_env({"SMTPKIT_DSN": "smtp://ann:Very-Secret-77@host.example:99999"})
    assert "Very-Secret-77" not in str(info.value)


def test_config_from_env_returns_groups() -> None:
    result = config_from_env({"SMTPKIT_DSN": "roundrobin(smtp://a.example smtp://b.example)"})
    assert isinstance(result, TransportGroup)
    assert result.kind == "roundrobin"
