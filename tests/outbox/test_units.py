"""The outbox's pure parts: the schedule, the outcome decision, the record codec."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtpkit import (
    Address,
    ConnectError,
    DataRefused,
    DeliveryUnknown,
    Envelope,
    MessageTooLarge,
    RecipientsRefused,
    RecipientStatus,
    Reply,
    SendResult,
    TLSError,
)
from smtpkit._exceptions import AllTransportsFailed, AuthenticationError, SenderRefused
from smtpkit.outbox import RecipientState, Schedule, Status
from smtpkit.outbox._outcome import decide, is_permanent_for_message
from smtpkit.outbox._records import (
    checksum,
    decode_envelope,
    encode_envelope,
    recipients_from_json,
    recipients_json,
)

NOW = 1_800_000_000.0
FLAT = Schedule(delays=(60.0, 300.0), give_up_after=3600.0, jitter=0)
OK = Reply(250, "2.1.5", "OK")
GREY = Reply(450, "4.2.0", "Greylisted")
GONE = Reply(550, "5.1.1", "No such user")


def _pending(*addresses: str) -> tuple[RecipientState, ...]:
    return tuple(RecipientState(a, "pending") for a in addresses)


def _result(*statuses: tuple[str, Reply]) -> SendResult:
    return SendResult(
        message_id="<1@example.com>",
        envelope=Envelope("a@example.com", [a for a, _ in statuses]),
        recipients=tuple(RecipientStatus(a, r) for a, r in statuses),
        reply=Reply(250, "2.0.0", "queued"),
    )


def _decide(states: tuple[RecipientState, ...], outcome: object, **kwargs: object):  # type: ignore[no-untyped-def]
    values: dict[str, object] = {
        "attempts": 1,
        "first_due": NOW,
        "now": NOW,
        "schedule": FLAT,
        "flagged": False,
    }
    values.update(kwargs)
    return decide(states, outcome, **values)  # type: ignore[arg-type]


# -- Schedule -------------------------------------------------------------------------------------


def test_default_schedule_grows_from_a_minute_to_hours_and_gives_up_after_four_days() -> None:
    schedule = Schedule(jitter=0)
    delays = [schedule.delay(n) for n in range(1, 12)]
    assert delays[0] == 60
    assert delays == sorted(delays)
    assert delays[-1] >= 2 * 3600
    assert schedule.give_up_after == 4 * 86400


def test_jitter_stays_within_its_fraction() -> None:
    schedule = Schedule(delays=(100.0,), jitter=0.1)
    rng = random.Random(1)
    values = [schedule.delay(1, rng=rng) for _ in range(200)]
    assert all(90 <= v <= 110 for v in values)
    assert len(set(values)) > 1


@pytest.mark.parametrize(
    "kwargs",
    [{"delays": ()}, {"delays": (-1,)}, {"give_up_after": -1}, {"jitter": 1.0}],
)
def test_schedule_rejects_nonsense(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Schedule(**kwargs)  # type: ignore[arg-type]


# -- decide ---------------------------------------------------------------------------------------


def test_all_accepted_is_sent_with_the_result() -> None:
    decision = _decide(_pending("a@example.com"), _result(("a@example.com", OK)))
    assert decision.status is Status.SENT
    assert decision.due_at is None
    assert decision.result is not None
    assert decision.result["message_id"] == "<1@example.com>"


def test_partial_refusal_keeps_only_transient_recipients_pending() -> None:
    states = _pending("a@example.com", "b@example.com", "c@example.com")
    outcome = _result(("a@example.com", OK), ("b@example.com", GREY), ("c@example.com", GONE))
    decision = _decide(states, outcome)
    assert decision.status is Status.DEFERRED
    assert decision.due_at == NOW + 60
    assert [s.state for s in decision.recipients] == ["accepted", "pending", "refused"]
    assert decision.last_reply in (GREY, GONE)


def test_a_later_attempt_keeps_earlier_acceptances() -> None:
    states = (RecipientState("a@example.com", "accepted", OK), *_pending("b@example.com"))
    decision = _decide(states, _result(("b@example.com", OK)), attempts=2)
    assert decision.status is Status.SENT
    assert [s.state for s in decision.recipients] == ["accepted", "accepted"]


def test_everyone_refused_for_good_is_failed() -> None:
    error = RecipientsRefused("refused", rejected={"a@example.com": GONE})
    decision = _decide(_pending("a@example.com"), error)
    assert decision.status is Status.FAILED
    assert decision.recipients[0].reply == GONE


def test_mixed_all_refused_defers_only_the_transient_ones() -> None:
    error = RecipientsRefused("refused", rejected={"a@example.com": GONE, "b@example.com": GREY})
    decision = _decide(_pending("a@example.com", "b@example.com"), error)
    assert decision.status is Status.DEFERRED
    assert [s.state for s in decision.recipients] == ["refused", "pending"]


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (ConnectError("refused"), Status.DEFERRED),
        (DataRefused("no", reply=Reply(451, "4.3.0", "later")), Status.DEFERRED),
        (DataRefused("no", reply=Reply(554, "5.7.1", "spam")), Status.FAILED),
        (SenderRefused("no", reply=Reply(553, "5.7.1", "not yours")), Status.FAILED),
        (MessageTooLarge("big", limit=10, size=20), Status.FAILED),
        # Worker-side problems do not destroy the queue: they wait for a fixed worker.
        (TLSError("certificate verify failed"), Status.DEFERRED),
        (AuthenticationError("bad login", reply=Reply(535, "5.7.8", "no")), Status.DEFERRED),
        (RuntimeError("a bug"), Status.DEFERRED),
        (DeliveryUnknown("dropped after the dot"), Status.UNKNOWN),
    ],
)
def test_errors_are_classified(error: BaseException, status: Status) -> None:
    decision = _decide(_pending("a@example.com"), error)
    assert decision.status is status
    assert decision.flagged is (status is Status.UNKNOWN)
    assert decision.last_error is not None
    assert type(error).__name__ in decision.last_error


def test_all_transports_failed_is_permanent_only_if_every_error_is() -> None:
    hard = DataRefused("no", reply=GONE)
    assert is_permanent_for_message(AllTransportsFailed("x", errors=[hard, hard]))
    assert not is_permanent_for_message(AllTransportsFailed("x", errors=[hard, ConnectError("x")]))
    assert not is_permanent_for_message(AllTransportsFailed("x", errors=[]))


def test_flag_is_sticky() -> None:
    decision = _decide(_pending("a@example.com"), _result(("a@example.com", OK)), flagged=True)
    assert decision.status is Status.SENT
    assert decision.flagged


def test_next_attempt_never_lands_after_the_lifetime() -> None:
    decision = _decide(_pending("a@example.com"), ConnectError("x"), attempts=2, now=NOW + 3500)
    assert decision.status is Status.DEFERRED
    assert decision.due_at == NOW + 3600  # capped, not NOW + 3500 + 300


def test_expired_lifetime_fails_pending_with_4_4_7_and_keeps_accepted() -> None:
    states = (RecipientState("a@example.com", "accepted", OK), *_pending("b@example.com"))
    decision = _decide(states, _result(("b@example.com", GREY)), attempts=5, now=NOW + 3600)
    assert decision.status is Status.SENT  # a reached its recipient; b gave up
    assert [s.state for s in decision.recipients] == ["accepted", "refused"]
    assert decision.last_reply is not None
    assert decision.last_reply.enhanced_code == "4.4.7"
    assert decision.last_reply.code == 450
    assert decision.last_error is not None
    assert "gave up" in decision.last_error


def test_expired_unknown_is_failed_and_still_flagged() -> None:
    decision = _decide(_pending("a@example.com"), DeliveryUnknown("x"), now=NOW + 7200)
    assert decision.status is Status.FAILED
    assert decision.flagged


# -- records --------------------------------------------------------------------------------------

LOCAL = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789.-_+", min_size=1, max_size=20)


@given(st.lists(LOCAL, min_size=1, max_size=5), st.booleans())
def test_envelope_json_round_trips(locals_: list[str], null_sender: bool) -> None:
    addresses = []
    for local in locals_:
        try:
            addresses.append(Address.parse(f"{local}@example.com"))
        except ValueError:
            continue
    if not addresses:
        return
    envelope = Envelope(None if null_sender else "b@example.org", addresses)
    assert decode_envelope(encode_envelope(envelope)) == envelope


@given(st.text(max_size=40), st.text(max_size=40))
def test_decoded_addresses_never_carry_controls_or_spaces(local: str, domain: str) -> None:
    text = json.dumps({"v": 1, "sender": None, "recipients": [[local, domain, domain]]})
    try:
        envelope = decode_envelope(text)
    except ValueError:
        return
    (address,) = envelope.recipients
    forbidden = {chr(c) for c in range(33)} | {"\x7f", "<", ">", "\u2028", "\u2029"}
    assert not (set(address.local + address.ascii_domain) & forbidden)


@pytest.mark.parametrize(
    "text",
    ["[]", '{"v": 2}', '{"v": 1, "recipients": "x"}', '{"v": 1, "recipients": [["a"]]}', "{"],
)
def test_decode_envelope_refuses_malformed_json(text: str) -> None:
    with pytest.raises(ValueError):
        decode_envelope(text)


def test_checksum_binds_bytes_and_envelope() -> None:
    assert checksum(b"ab", "c") != checksum(b"a", "bc")
    assert checksum(b"data", "{}") == checksum(b"data", "{}")


def test_recipient_states_round_trip() -> None:
    states = (
        RecipientState("a@example.com", "accepted", OK),
        RecipientState("b@example.com", "pending", None),
    )
    assert recipients_from_json(recipients_json(states)) == states
    with pytest.raises(ValueError):
        recipients_from_json('[{"address": "a", "state": "lost"}]')
