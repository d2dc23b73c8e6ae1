"""The envelope codec on its own: what it accepts, and that it refuses anything else politely."""

from __future__ import annotations

from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from galaxy.errors import InvalidInput, NotFound, ProtocolError
from galaxy.mesh import wire

bodies = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**64), 2**64) | st.text(max_size=30) | st.binary(max_size=30)
    | st.floats(allow_nan=False),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=30,
)


@given(msg_id=st.integers(0, 2**63 - 1), kind=st.sampled_from(sorted(wire.TYPES)),
       method=st.text(min_size=1, max_size=50), body=bodies)
def test_encode_parse_round_trip(msg_id: int, kind: str, method: str, body: Any) -> None:
    msg = wire.parse(wire.encode(msg_id, kind, method, body))
    assert (msg.id, msg.type, msg.method, msg.body) == (msg_id, kind, method, body)


@settings(max_examples=300)
@given(data=st.binary(max_size=300) | bodies.map(cbor2.dumps))
def test_parse_raises_only_wire_errors(data: bytes) -> None:
    try:
        wire.parse(data)
    except wire.WireError as err:
        assert isinstance(err, ProtocolError) and err.code == "protocol"


def test_broken_requests_keep_their_id_for_the_error_reply() -> None:
    good = {"v": 1, "id": 9, "type": "req", "method": "m", "body": None}
    for broken in ({**good, "v": 2}, {k: v for k, v in good.items() if k != "body"}):
        with pytest.raises(wire.WireError) as err:
            wire.parse(cbor2.dumps(broken))
        assert err.value.reply_id == 9
    with pytest.raises(wire.WireError) as err:  # an event cannot be answered
        wire.parse(cbor2.dumps({**good, "type": "evt", "v": 2}))
    assert err.value.reply_id is None
    with pytest.raises(wire.WireError) as err:
        wire.parse(wire.encode(9, "req", "m", "x" * 2000), max_frame=1024)
    assert err.value.reply_id == 9 and "exceeds" in str(err.value)
    with pytest.raises(wire.WireError):
        wire.parse(b"\x81" * 1000 + b"\x00")  # nesting deeper than the decoder allows


def test_error_body_is_the_galaxy_error_wire_form() -> None:
    msg = wire.parse(wire.encode_error(3, "m", NotFound("no job web", field="job")))
    assert msg.type == "err" and msg.body == {"code": "not_found", "message": "no job web", "field": "job"}


def test_unencodable_body_names_the_field() -> None:
    with pytest.raises(InvalidInput) as err:
        wire.encode(1, "req", "m", {1, 2, object()})
    assert err.value.field == "body"
