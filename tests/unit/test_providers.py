"""Provider presets: the facts, the registry, and SMTPConfig.from_provider."""

from __future__ import annotations

import dataclasses

import pytest

from smtpkit._config import Credentials, SMTPConfig, Timeouts, TLSMode, check_host
from smtpkit._exceptions import ConfigError
from smtpkit._secrets import Secret
from smtpkit.providers import (
    Provider,
    all_providers,
    config_from_provider,
    find_provider,
    get_provider,
    provider_for_host,
    provider_names,
)

# (name, host, port, tls): the values each preset must keep.
FACTS = [
    ("gmail", "smtp.gmail.com", 465, TLSMode.IMPLICIT),
    ("google-workspace", "smtp-relay.gmail.com", 587, TLSMode.STARTTLS),
    ("outlook", "smtp-mail.outlook.com", 587, TLSMode.STARTTLS),
    ("office365", "smtp.office365.com", 587, TLSMode.STARTTLS),
    ("yahoo", "smtp.mail.yahoo.com", 465, TLSMode.IMPLICIT),
    ("icloud", "smtp.mail.me.com", 587, TLSMode.STARTTLS),
    ("zoho", "smtp.zoho.com", 465, TLSMode.IMPLICIT),
    ("zoho-eu", "smtp.zoho.eu", 465, TLSMode.IMPLICIT),
    ("fastmail", "smtp.fastmail.com", 465, TLSMode.IMPLICIT),
    ("sendgrid", "smtp.sendgrid.net", 587, TLSMode.STARTTLS),
    ("mailgun", "smtp.mailgun.org", 587, TLSMode.STARTTLS),
    ("mailgun-eu", "smtp.eu.mailgun.org", 587, TLSMode.STARTTLS),
    ("postmark", "smtp.postmarkapp.com", 587, TLSMode.STARTTLS),
    ("brevo", "smtp-relay.brevo.com", 587, TLSMode.STARTTLS),
    ("mailjet", "in-v3.mailjet.com", 587, TLSMode.STARTTLS),
    ("mailtrap", "live.smtp.mailtrap.io", 587, TLSMode.STARTTLS),
    ("mailtrap-sandbox", "sandbox.smtp.mailtrap.io", 2525, TLSMode.STARTTLS),
    ("sparkpost", "smtp.sparkpostmail.com", 587, TLSMode.STARTTLS),
    ("sparkpost-eu", "smtp.eu.sparkpostmail.com", 587, TLSMode.STARTTLS),
    ("ovh", "ssl0.ovh.net", 465, TLSMode.IMPLICIT),
    ("ionos", "smtp.ionos.com", 587, TLSMode.STARTTLS),
]


@pytest.mark.parametrize(("name", "host", "port", "tls"), FACTS)
def test_preset_facts(name: str, host: str, port: int, tls: TLSMode) -> None:
    config = SMTPConfig.from_provider(name)
    assert (config.host, config.effective_port, config.tls) == (host, port, tls)
    assert config.credentials is None


def test_every_preset_is_listed_and_tested() -> None:
    regional = {p.name for p in all_providers() if p.regional}
    assert set(provider_names()) == {name for name, *_ in FACTS} | regional
    assert regional == {"ses"}


@pytest.mark.parametrize("preset", all_providers(), ids=lambda p: p.name)
def test_every_preset_is_well_formed(preset: Provider) -> None:
    assert preset.note
    assert preset.docs_url.startswith("https://")
    assert preset.auth_mechanisms
    # Standard port conventions: 465 is implicit TLS, everything else here is STARTTLS.
    assert (preset.port == 465) == (preset.tls is TLSMode.IMPLICIT)
    host = preset.host_for("us-east-1" if preset.regional else None)
    assert check_host(host) == host
    config = config_from_provider(
        preset.name,
        region="us-east-1" if preset.regional else None,
        username="user@example.com",
        password="pw",
    )
    assert config.auth_mechanisms == preset.auth_mechanisms
    # A preset never asks for plaintext.
    assert config.tls in (TLSMode.IMPLICIT, TLSMode.STARTTLS)
    assert config.verify


def test_presets_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        get_provider("gmail").host = "evil.example"  # type: ignore[misc]


def test_names_are_unique_across_presets() -> None:
    names = [name for preset in all_providers() for name in preset.names]
    assert len(names) == len(set(names))


@pytest.mark.parametrize(
    ("alias", "name"),
    [
        ("google", "gmail"),
        ("GMAIL", "gmail"),
        ("hotmail", "outlook"),
        ("microsoft365", "office365"),
        ("m365", "office365"),
        ("exchange_online", "office365"),
        ("amazon-ses", "ses"),
        ("sendinblue", "brevo"),
        ("gmail-relay", "google-workspace"),
        (" mailgun-us ", "mailgun"),
    ],
)
def test_aliases(alias: str, name: str) -> None:
    assert get_provider(alias).name == name


def test_unknown_provider_suggests_names() -> None:
    assert find_provider("nope") is None
    with pytest.raises(ConfigError, match="did you mean gmail") as info:
        get_provider("gmial")
    assert "sendgrid" in str(info.value)
    with pytest.raises(ConfigError, match="unknown provider"):
        SMTPConfig.from_provider("no-such-provider")


# -- notes users need ---------------------------------------------------------------------------


def test_microsoft_notes_point_at_oauth2() -> None:
    for name in ("office365", "outlook"):
        preset = get_provider(name)
        assert "OAuth2" in preset.note
        assert "5.7.139" in preset.note
        assert preset.auth_mechanisms[0] == "XOAUTH2"


def test_gmail_note_mentions_app_passwords() -> None:
    assert "app password" in get_provider("gmail").note


# -- from_provider -------------------------------------------------------------------------------


def test_username_and_password_build_credentials() -> None:
    config = SMTPConfig.from_provider("gmail", username="me@gmail.com", password="app-pw")
    assert config.credentials == Credentials("me@gmail.com", Secret("app-pw"))
    assert "app-pw" not in repr(config)


def test_password_may_be_a_secret() -> None:
    config = SMTPConfig.from_provider("fastmail", username="me", password=Secret("x"))
    assert config.credentials == Credentials("me", Secret("x"))


@pytest.mark.parametrize(
    ("name", "username"),
    [("sendgrid", "apikey"), ("mailtrap", "api"), ("sparkpost", "SMTP_Injection")],
)
def test_fixed_usernames(name: str, username: str) -> None:
    config = SMTPConfig.from_provider(name, password="KEY")
    assert config.credentials == Credentials(username, Secret("KEY"))


def test_username_needed_where_the_provider_has_none() -> None:
    with pytest.raises(ConfigError, match="username is needed"):
        SMTPConfig.from_provider("gmail", password="pw")


def test_office365_with_token_provider() -> None:
    def token() -> str:
        return "eyJ0eXAi"

    config = SMTPConfig.from_provider("office365", username="me@corp.example", token=token)
    assert config.credentials is not None
    assert config.credentials.token is token
    assert config.auth_mechanisms == ("XOAUTH2", "LOGIN")


def test_token_with_a_provider_without_oauth_is_refused() -> None:
    with pytest.raises(ConfigError, match="XOAUTH2 or OAUTHBEARER"):
        SMTPConfig.from_provider("sendgrid", token=lambda: "t")


def test_ses_regions() -> None:
    config = SMTPConfig.from_provider("ses", region="eu-west-1", username="AKIA", password="pw")
    assert config.host == "email-smtp.eu-west-1.amazonaws.com"
    assert config.effective_port == 587
    assert SMTPConfig.from_provider("ses", region="us-gov-west-1").host == (
        "email-smtp.us-gov-west-1.amazonaws.com"
    )
    with pytest.raises(ConfigError, match="needs a region"):
        SMTPConfig.from_provider("ses")
    for bad in ("eu_west_1", "EU-WEST-1", "eu-west-1.evil.example", "x"):
        with pytest.raises(ConfigError, match="not a region"):
            SMTPConfig.from_provider("ses", region=bad)
    with pytest.raises(ConfigError, match="has no regions"):
        SMTPConfig.from_provider("gmail", region="eu-west-1")


def test_overrides() -> None:
    config = SMTPConfig.from_provider(
        "zoho", host="smtppro.zoho.com", timeouts=Timeouts.uniform(5), transcript=True
    )
    assert config.host == "smtppro.zoho.com"
    assert config.timeouts == Timeouts.uniform(5)
    assert config.transcript
    assert config.tls is TLSMode.IMPLICIT


def test_tls_override_uses_the_standard_port() -> None:
    config = SMTPConfig.from_provider("gmail", tls=TLSMode.STARTTLS)
    assert (config.tls, config.port, config.effective_port) == (TLSMode.STARTTLS, None, 587)


def test_port_override_must_fit_the_tls_mode() -> None:
    assert SMTPConfig.from_provider("sendgrid", port=2525).port == 2525
    with pytest.raises(ConfigError, match="port 587 is for STARTTLS"):
        SMTPConfig.from_provider("gmail", port=587)
    config = SMTPConfig.from_provider("gmail", port=587, tls=TLSMode.STARTTLS)
    assert (config.port, config.tls) == (587, TLSMode.STARTTLS)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"colour": "blue"}, "unknown setting colour"),
        ({"host": "x.example", "region": "eu-west-1"}, "region or host"),
        (
            {"credentials": Credentials("a", Secret("b")), "username": "a", "password": "b"},
            "not both",
        ),
        ({"tls": TLSMode.NONE, "username": "a", "password": "b"}, "allow_insecure_auth"),
    ],
)
def test_bad_overrides(kwargs: dict[str, object], match: str) -> None:
    name = "ses" if "region" in kwargs else "fastmail"
    with pytest.raises(ConfigError, match=match):
        SMTPConfig.from_provider(name, **kwargs)


def test_provider_for_host() -> None:
    assert provider_for_host("smtp.office365.com") is get_provider("office365")
    assert provider_for_host("SMTP.GMAIL.COM.") is get_provider("gmail")
    assert provider_for_host("email-smtp.ap-southeast-2.amazonaws.com") is get_provider("ses")
    assert provider_for_host("email-smtp..amazonaws.com") is None
    assert provider_for_host("mail.example.com") is None
