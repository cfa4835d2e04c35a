"""SASL mechanisms: known vectors, state transitions, redaction and mechanism choice."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from smtpkit._auth import (
    SUPPORTED_MECHANISMS,
    TOKEN_MECHANISMS,
    CramMD5Mechanism,
    LoginMechanism,
    Mechanism,
    OAuthBearerMechanism,
    PlainMechanism,
    XOAuth2Mechanism,
    choose_mechanisms,
    create_mechanism,
    redact_auth_line,
)
from smtpkit._exceptions import AuthenticationError

# --- PLAIN (RFC 4616) --------------------------------------------------------------------------


def test_plain_rfc4616_vector() -> None:
    # RFC 4616 §4: "<NUL>tim<NUL>tanstaaftanstaaf" (empty authorization identity).
    mech = create_mechanism("PLAIN", username="tim", password="tanstaaftanstaaf")
    response = mech.initial_response()
    assert response == b"\x00tim\x00tanstaaftanstaaf"
    assert base64.b64encode(response) == b"AHRpbQB0YW5zdGFhZnRhbnN0YWFm"


def test_plain_challenge_after_initial_response_is_an_error() -> None:
    mech = PlainMechanism("tim", "tanstaaftanstaaf")
    mech.initial_response()
    with pytest.raises(AuthenticationError) as info:
        mech.respond(b"")
    assert info.value.stage == "auth"
    assert "tanstaaf" not in str(info.value)


def test_plain_without_initial_response_answers_the_empty_challenge_once() -> None:
    mech = PlainMechanism("tim", "pw")
    assert mech.respond(b"") == b"\x00tim\x00pw"
    with pytest.raises(AuthenticationError):
        mech.respond(b"")


def test_plain_utf8() -> None:
    mech = PlainMechanism("jürgen@exämple.org", "pässwörd")
    assert mech.initial_response() == "\0jürgen@exämple.org\0pässwörd".encode()


@given(st.text(), st.text())
def test_plain_round_trip(username: str, password: str) -> None:
    assume("\0" not in username and "\0" not in password)
    response = PlainMechanism(username, password).initial_response()
    assert response is not None
    authzid, authcid, passwd = response.split(b"\0")
    assert authzid == b""
    assert authcid.decode("utf-8") == username
    assert passwd.decode("utf-8") == password


@given(st.text(min_size=1), st.text(min_size=1), st.sampled_from(["username", "password"]))
def test_plain_rejects_nul_without_echoing_secret(before: str, after: str, field: str) -> None:
    secret = f"S3CR3T{before}\0{after}"
    kwargs: dict[str, Any] = {"username": "tim", "password": "pw", field: secret}
    with pytest.raises(AuthenticationError) as info:
        create_mechanism("PLAIN", **kwargs)
    assert info.value.stage == "auth"
    assert "S3CR3T" not in str(info.value)
    assert field in str(info.value)


def test_unencodable_credential_is_an_auth_error_without_secret() -> None:
    mech = PlainMechanism("tim", "S3CR3T\udc80")  # a lone surrogate cannot be UTF-8 encoded
    with pytest.raises(AuthenticationError) as info:
        mech.initial_response()
    assert "S3CR3T" not in str(info.value)


# --- LOGIN ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (b"Username:", b"Password:"),
        (b"User Name\x00", b"Password\x00"),  # Microsoft's older wording
        (b"", b""),
        (b"Benutzername:", b"Passwort:"),
        (b"Password:", b"Username:"),  # wrong order from the server: still answered by step
    ],
)
def test_login_answers_by_step(first: bytes, second: bytes) -> None:
    mech = create_mechanism("login", username="tim", password="tanstaaf")
    assert mech.initial_response() is None
    assert mech.respond(first) == b"tim"
    assert mech.respond(second) == b"tanstaaf"
    with pytest.raises(AuthenticationError) as info:
        mech.respond(b"Username:")
    assert "tanstaaf" not in str(info.value)


# --- CRAM-MD5 (RFC 2195) -------------------------------------------------------------------------


def test_cram_md5_rfc2195_vector() -> None:
    mech = create_mechanism("CRAM-MD5", username="tim", password="tanstaaftanstaaf")
    assert mech.initial_response() is None
    challenge = b"<1896.697170952@postoffice.reston.mci.net>"
    assert mech.respond(challenge) == b"tim b913a602c7eda7a495b4e6e7334d3890"


def test_cram_md5_rejects_empty_and_second_challenge() -> None:
    with pytest.raises(AuthenticationError):
        CramMD5Mechanism("tim", "pw").respond(b"")
    mech = CramMD5Mechanism("tim", "pw")
    mech.respond(b"<1.2@example.org>")
    with pytest.raises(AuthenticationError):
        mech.respond(b"<1.2@example.org>")


# --- XOAUTH2 -------------------------------------------------------------------------------------

GOOGLE_ERROR = b'{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}'


def test_xoauth2_google_vector() -> None:
    # The example from Google's XOAUTH2 protocol documentation.
    mech = create_mechanism(
        "XOAUTH2",
        username="someuser@example.com",
        token="ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg",
    )
    response = mech.initial_response()
    assert response == (
        b"user=someuser@example.com\x01auth=Bearer "
        b"ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg\x01\x01"
    )
    assert base64.b64encode(response) == (
        b"dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52"
        b"YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ=="
    )


def test_xoauth2_error_challenge_is_recorded_and_acknowledged_with_empty_response() -> None:
    mech = XOAuth2Mechanism("someuser@example.com", "tok")
    mech.initial_response()
    assert mech.server_error is None
    assert mech.respond(GOOGLE_ERROR) == b""
    assert mech.server_error == json.loads(GOOGLE_ERROR)
    with pytest.raises(AuthenticationError) as info:
        mech.respond(GOOGLE_ERROR)
    assert info.value.stage == "auth"


def test_xoauth2_without_initial_response_sends_token_on_first_challenge() -> None:
    mech = XOAuth2Mechanism("u@example.com", "tok")
    assert mech.respond(b"") == b"user=u@example.com\x01auth=Bearer tok\x01\x01"
    assert mech.respond(b"not json") == b""
    assert mech.server_error == {"raw": "not json"}


def test_token_error_that_is_json_but_not_an_object_is_kept_raw() -> None:
    mech = OAuthBearerMechanism("u@example.com", "tok")
    mech.initial_response()
    assert mech.respond(b'["401"]') == b"\x01"
    assert mech.server_error == {"raw": '["401"]'}


def test_token_error_is_bounded() -> None:
    mech = XOAuth2Mechanism("u@example.com", "tok")
    mech.initial_response()
    mech.respond(b"x" * 100_000)
    assert mech.server_error is not None
    assert len(str(mech.server_error["raw"])) <= 2048


@pytest.mark.parametrize("name", ["XOAUTH2", "OAUTHBEARER"])
@pytest.mark.parametrize("field", ["username", "token"])
def test_oauth_rejects_ctrl_a_without_echoing_secret(name: str, field: str) -> None:
    kwargs: dict[str, Any] = {
        "username": "u@example.com",
        "token": "tok",
        field: "S3CR3T\x01inject",
    }
    with pytest.raises(AuthenticationError) as info:
        create_mechanism(name, **kwargs)
    assert info.value.stage == "auth"
    assert "S3CR3T" not in str(info.value)


def test_oauth_rejects_empty_token() -> None:
    with pytest.raises(AuthenticationError, match="empty"):
        create_mechanism("XOAUTH2", username="u@example.com", token="")


# --- OAUTHBEARER (RFC 7628) ----------------------------------------------------------------------


def test_oauthbearer_rfc7628_vector() -> None:
    # RFC 7628 §4.1, with host and port.
    mech = create_mechanism(
        "OAUTHBEARER",
        username="user@example.com",
        token="vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==",
        host="server.example.com",
        port=143,
    )
    assert mech.initial_response() == (
        b"n,a=user@example.com,\x01host=server.example.com\x01port=143\x01"
        b"auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01"
    )


def test_oauthbearer_without_host_and_port_and_escaped_authzid() -> None:
    mech = OAuthBearerMechanism("a,b=c@example.com", "tok")
    assert mech.initial_response() == b"n,a=a=2Cb=3Dc@example.com,\x01auth=Bearer tok\x01\x01"


def test_oauthbearer_error_is_acknowledged_with_ctrl_a() -> None:
    mech = OAuthBearerMechanism("user@example.com", "tok")
    mech.initial_response()
    body = b'{"status":"invalid_token","scope":"example_scope"}'
    assert mech.respond(body) == b"\x01"
    assert mech.server_error == {"status": "invalid_token", "scope": "example_scope"}
    with pytest.raises(AuthenticationError):
        mech.respond(body)


# --- factory, repr -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("plain", PlainMechanism),
        ("LOGIN", LoginMechanism),
        ("Cram-Md5", CramMD5Mechanism),
        ("xoauth2", XOAuth2Mechanism),
        (" OAUTHBEARER ", OAuthBearerMechanism),
    ],
)
def test_create_mechanism_by_name(name: str, cls: type[Mechanism]) -> None:
    mech = create_mechanism(name, username="u", password="p", token="t")
    assert type(mech) is cls
    assert mech.name == name.strip().upper()
    assert mech.needs_token is (mech.name in TOKEN_MECHANISMS)


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("SCRAM-SHA-256", {"password": "p"}, "unsupported"),
        ("PLAIN", {"token": "t"}, "password"),
        ("CRAM-MD5", {}, "password"),
        ("XOAUTH2", {"password": "p"}, "token"),
        ("OAUTHBEARER", {}, "token"),
    ],
)
def test_create_mechanism_errors(name: str, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(AuthenticationError, match=match) as info:
        create_mechanism(name, username="u", **kwargs)
    assert info.value.stage == "auth"
    assert not info.value.is_transient


secrets = st.text(min_size=1).map(lambda s: "S3CR3T" + s)


@given(secrets, st.sampled_from(SUPPORTED_MECHANISMS))
def test_repr_never_shows_secret(secret: str, name: str) -> None:
    secret = secret.replace("\0", "").replace("\x01", "")
    mech = create_mechanism(name, username="user@example.com", password=secret, token=secret)
    # Exercise the state machine first: the repr must stay clean after use as well.
    mech.initial_response()
    text = repr(mech) + str(mech)
    assert "S3CR3T" not in text
    assert repr(mech) == f"<{type(mech).__name__} username='user@example.com'>"


def test_repr_names_class_and_user() -> None:
    mech = create_mechanism("CRAM-MD5", username="tim", password="tanstaaf")
    assert repr(mech) == "<CramMD5Mechanism username='tim'>"


# --- choose_mechanisms ---------------------------------------------------------------------------

DEFAULT = ("XOAUTH2", "OAUTHBEARER", "CRAM-MD5", "PLAIN", "LOGIN")


@pytest.mark.parametrize(
    ("preference", "offered", "has_password", "has_token", "expected"),
    [
        (DEFAULT, ["PLAIN", "LOGIN"], True, False, ["PLAIN", "LOGIN"]),
        (DEFAULT, ["LOGIN", "PLAIN", "CRAM-MD5"], True, False, ["CRAM-MD5", "PLAIN", "LOGIN"]),
        (DEFAULT, ["login", "plain", "xoauth2"], True, False, ["PLAIN", "LOGIN"]),
        (
            DEFAULT,
            ["LOGIN", "PLAIN", "XOAUTH2", "OAUTHBEARER"],
            False,
            True,
            ["XOAUTH2", "OAUTHBEARER"],
        ),
        (DEFAULT, ["PLAIN", "XOAUTH2"], True, True, ["XOAUTH2", "PLAIN"]),
        (["login", "plain"], ["PLAIN", "LOGIN"], True, False, ["LOGIN", "PLAIN"]),
        (["PLAIN", "plain", "PLAIN"], ["PLAIN"], True, False, ["PLAIN"]),
        (["SCRAM-SHA-256", "PLAIN"], ["SCRAM-SHA-256", "PLAIN"], True, False, ["PLAIN"]),
        (DEFAULT, ["GSSAPI", "NTLM"], True, True, []),
        (DEFAULT, [], True, True, []),
        (DEFAULT, ["PLAIN", "LOGIN"], False, True, []),
        (DEFAULT, ["XOAUTH2"], True, False, []),
    ],
)
def test_choose_mechanisms(
    preference: tuple[str, ...] | list[str],
    offered: list[str],
    has_password: bool,
    has_token: bool,
    expected: list[str],
) -> None:
    chosen = choose_mechanisms(preference, offered, has_password=has_password, has_token=has_token)
    assert chosen == expected


@given(
    st.lists(st.sampled_from([*SUPPORTED_MECHANISMS, "GSSAPI", "plain", "login"])),
    st.sets(st.sampled_from([*SUPPORTED_MECHANISMS, "NTLM"])),
    st.booleans(),
    st.booleans(),
)
def test_choose_mechanisms_properties(
    preference: list[str], offered: set[str], has_password: bool, has_token: bool
) -> None:
    chosen = choose_mechanisms(preference, offered, has_password=has_password, has_token=has_token)
    assert len(chosen) == len(set(chosen))
    assert all(name in offered and name in SUPPORTED_MECHANISMS for name in chosen)
    assert all(has_token if name in TOKEN_MECHANISMS else has_password for name in chosen)
    upper = [p.upper() for p in preference]
    assert chosen == sorted(chosen, key=upper.index)


# --- redact_auth_line ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm", "AUTH PLAIN ***"),
        ("AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm\r\n", "AUTH PLAIN ***\r\n"),
        ("auth xoauth2 dXNlcj1zb21ldXNlckBleGFtcGxl", "AUTH XOAUTH2 ***"),
        ("AUTH LOGIN", "AUTH LOGIN"),
        ("AUTH LOGIN dGlt", "AUTH LOGIN ***"),
        ("AUTH CRAM-MD5\r\n", "AUTH CRAM-MD5\r\n"),
        ("AUTH PLAIN =", "AUTH PLAIN ***"),
        ("AUTH", "***"),
        ("AUTH scram-sha-256 biwsbj11c2VyLHI9", "AUTH SCRAM-SHA-256 ***"),
        ("AUTH dGlt", "AUTH ***"),  # not a mechanism name: may be a misplaced credential
        ("AUTH dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkwIGxvbmdlcg==", "AUTH ***"),
        ("dGlt", "***"),
        ("dGFuc3RhYWY=\r\n", "***\r\n"),
        ("AUTHENTICATE-ish", "***"),
        ("", "***"),
        ("*", "*"),
    ],
)
def test_redact_auth_line(line: str, expected: str) -> None:
    assert redact_auth_line(line) == expected


@given(st.text(alphabet=st.characters(blacklist_characters="\r\n"), min_size=1))
def test_redact_auth_line_never_keeps_the_payload(payload: str) -> None:
    assume(payload.strip() not in ("", "*"))
    secret = "S3CR3T" + payload
    for line in (secret, f"AUTH PLAIN {secret}", f"AUTH XOAUTH2 {secret}\r\n", f"AUTH {secret}"):
        assert "S3CR3T" not in redact_auth_line(line)
