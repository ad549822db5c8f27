"""The token's base64url segments are read as strictly as PyJWT reads them: the verifier's
faster reading accepts, decodes and refuses exactly the same segments, with the same errors."""

from __future__ import annotations

import base64
import random
from collections.abc import Callable

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cds.security.tokens import StrictJws

ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
NEAR = ALPHABET + b"=+/. \n\x00\xff"
CRAFTED = [
    b"",
    b"eyJhbGciOiJSUzM4NCJ9",
    b"YQ",
    b"YQ==",
    b"YQ=",
    b"YQ===",
    b"YWI",
    b"YWI=",
    b"YWJj",
    b"YWJj=",
    b"Y",
    b"YR",  # not canonical: the last character carries bits that are not there
    b"YQ\n",
    b" YQ",
    b"Y+Q/",
    b"Y Q",
    b"YQ=A",
    b"====",
    b"=",
    "YQé".encode(),
    b"YQ\x00",
]


def outcome(read: Callable[[bytes, str], bytes], segment: bytes) -> tuple[str, object]:
    try:
        return "decoded", read(segment, "header")
    except Exception as exc:  # the outcome compared is the error itself
        return type(exc).__name__, str(exc)


@pytest.mark.parametrize("segment", CRAFTED)
def test_a_crafted_segment_is_read_as_pyjwt_reads_it(segment: bytes) -> None:
    ours = outcome(StrictJws._decode_base64url_segment, segment)
    assert ours == outcome(jwt.PyJWS._decode_base64url_segment, segment)


def test_random_segments_near_the_alphabet_are_read_as_pyjwt_reads_them() -> None:
    chance = random.Random(18)
    near = NEAR
    decoded = 0
    for _ in range(3000):
        segment = bytes(chance.choice(near) for _ in range(chance.randrange(0, 12)))
        ours = outcome(StrictJws._decode_base64url_segment, segment)
        assert ours == outcome(jwt.PyJWS._decode_base64url_segment, segment), segment
        decoded += ours[0] == "decoded"
    assert decoded > 100  # the sample holds valid segments too, not only refusals


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=40), st.sampled_from([b"", b"=", b"=="]))
def test_any_decoded_bytes_encoded_are_read_back_as_pyjwt_reads_them(
    data: bytes, padding: bytes
) -> None:
    segment = base64.urlsafe_b64encode(data).rstrip(b"=") + padding
    ours = outcome(StrictJws._decode_base64url_segment, segment)
    assert ours == outcome(jwt.PyJWS._decode_base64url_segment, segment)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(list(NEAR)), max_size=24).map(bytes))
def test_any_segment_near_the_alphabet_is_read_as_pyjwt_reads_it(segment: bytes) -> None:
    ours = outcome(StrictJws._decode_base64url_segment, segment)
    assert ours == outcome(jwt.PyJWS._decode_base64url_segment, segment)


@pytest.mark.parametrize("head", [b"", b"YWJj", b"eyJhbGciOiJSUzM4NCJ9"])
@pytest.mark.parametrize("tail_length", [2, 3])
def test_a_last_character_with_bits_the_bytes_lack_is_refused_as_pyjwt_refuses_it(
    head: bytes, tail_length: int
) -> None:
    # Every alphabet character in the last place of a 2- or 3-character tail: those whose spare
    # bits are set are not canonical (PyJWT refuses them), the others decode.
    refused = 0
    for last in ALPHABET:
        segment = head + b"Q" * (tail_length - 1) + bytes([last])
        ours = outcome(StrictJws._decode_base64url_segment, segment)
        assert ours == outcome(jwt.PyJWS._decode_base64url_segment, segment), segment
        refused += ours[0] == "DecodeError"
    assert refused == 64 - 64 // (16 if tail_length == 2 else 4)
