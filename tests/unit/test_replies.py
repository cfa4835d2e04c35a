"""Reply parsing, results and the error tree's transience rules."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtpkit import (
    AllTransportsFailed,
    AuthenticationError,
    ConnectError,
    DeliveryUnknown,
    Envelope,
    ExtensionUnsupported,
    NoCommonAuthMechanism,
    RecipientsRefused,
    RecipientStatus,
    Reply,
    SenderRefused,
    SendResult,
    TLSError,
    TransportError,
)

codes = st.integers(min_value=200, max_value=599)
prose = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=80).filter(
    lambda t: not t[:1].isdigit()
)


@given(codes, st.integers(0, 999), st.integers(0, 999), prose)
def test_enhanced_code_is_split_from_the_text(
    code: int, subject: int, detail: int, text: str
) -> None:
    enhanced = f"{str(code)[0]}.{subject}.{detail}"
    reply = Reply.parse(code, f"{enhanced} {text}")
    assert reply.code == code
    if str(code)[0] in "245":
        assert reply.enhanced_code == enhanced
        assert reply.text == text.strip()
    assert reply.is_transient == (400 <= code < 500)
    assert reply.is_permanent == (500 <= code < 600)


@given(codes, st.text(max_size=300))
def test_parse_never_fails_and_keeps_prose(code: int, text: str) -> None:
    reply = Reply.parse(code, text)
    assert reply.code == code
    assert "\r" not in reply.text
    if reply.enhanced_code is not None:
        assert reply.enhanced_code[0] == str(code)[0]


def test_multiline_reply_strips_repeated_enhanced_codes() -> None:
    reply = Reply.parse(550, "5.7.1 Service unavailable\n5.7.1 Client host blocked")
    assert reply.enhanced_code == "5.7.1"
    assert reply.text == "Service unavailable\nClient host blocked"
    assert str(reply) == "550 5.7.1 Service unavailable / Client host blocked"


def test_enhanced_code_of_another_class_is_not_taken() -> None:
    reply = Reply.parse(250, "5.1.1 looks odd")
    assert reply.enhanced_code is None
    assert reply.text == "5.1.1 looks odd"


@pytest.mark.parametrize(
    ("text", "queue_id"),
    [
        ("Ok: queued as 4Bx1Yz3kLmz9", "4Bx1Yz3kLmz9"),
        ("OK id=1rAbCd-000Xyz-Ab", "1rAbCd-000Xyz-Ab"),
        ("Ok 0100018c2f4a9d3e-5f2a", "0100018c2f4a9d3e-5f2a"),
        ("Message accepted for delivery", None),
    ],
)
def test_queue_id_is_found_in_common_reply_formats(text: str, queue_id: str | None) -> None:
    result = SendResult(
        message_id="<m@example.com>",
        envelope=Envelope("a@example.com", ["b@example.com"]),
        recipients=(RecipientStatus("b@example.com", Reply(250, "2.1.5", "ok")),),
        reply=Reply(250, "2.0.0", text),
    )
    assert result.queue_id == queue_id


def test_result_views_and_json() -> None:
    refused = Reply(550, "5.1.1", "No such user")
    result = SendResult(
        message_id="<m@example.com>",
        envelope=Envelope("a@example.com", ["b@example.com", "c@example.com"]),
        recipients=(
            RecipientStatus("b@example.com", Reply(250, "2.1.5", "ok")),
            RecipientStatus("c@example.com", refused),
        ),
        reply=Reply(250, "2.0.0", "Ok: queued as QQ12"),
        attempts=2,
        elapsed=0.5,
        transport="smtp://host:587",
    )
    assert result.accepted == ("b@example.com",)
    assert result.rejected == {"c@example.com": refused}
    with pytest.raises(RecipientsRefused) as info:
        result.raise_for_rejections()
    assert not info.value.is_transient
    data = json.loads(json.dumps(result.to_dict()))
    assert data["recipients"][1]["reply"]["enhanced_code"] == "5.1.1"
    assert data["queue_id"] == "QQ12"
    assert data["attempts"] == 2


def test_transience_comes_from_codes_not_text() -> None:
    assert SenderRefused("x", reply=Reply(451, None, "permanent failure")).is_transient
    assert not SenderRefused("x", reply=Reply(550, None, "try again later")).is_transient
    assert AuthenticationError("x", reply=Reply(454, "4.7.0", "")).is_transient
    assert not AuthenticationError("x", reply=Reply(535, "5.7.8", "")).is_transient
    assert not NoCommonAuthMechanism("x", reply=Reply(454, None, "")).is_transient
    assert not ExtensionUnsupported("x").is_transient
    assert ConnectError("x").is_transient
    assert DeliveryUnknown("x").is_transient
    assert not TLSError("x").is_transient
    assert TLSError("x", reply=Reply(454, "4.7.0", "TLS not available")).is_transient
    mixed = {"a@x.com": Reply(450, None, ""), "b@x.com": Reply(550, None, "")}
    assert not RecipientsRefused("x", rejected=mixed).is_transient
    assert RecipientsRefused("x", rejected={"a@x.com": Reply(452, None, "")}).is_transient
    group = AllTransportsFailed("all", errors=[TLSError("t"), ConnectError("c")])
    assert group.is_transient
    assert not AllTransportsFailed("all", errors=[TLSError("t")]).is_transient


def test_error_strings_carry_the_hint() -> None:
    error = TransportError("boom", stage="connect", hint="Check the port.")
    assert str(error) == "boom\nHint: Check the port."
    assert error.stage == "connect"


def test_result_json_keeps_a_null_sender_as_null() -> None:
    result = SendResult(
        message_id=None,
        envelope=Envelope(None, ["b@example.com"]),
        recipients=(RecipientStatus("b@example.com", Reply(250, None, "ok")),),
        reply=Reply(250, None, "ok"),
    )
    assert result.to_dict()["envelope"]["sender"] is None
