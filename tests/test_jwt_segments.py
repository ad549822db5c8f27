"""The token's base64url segments are read as strictly as PyJWT reads them: the verifier's
faster reading accepts, decodes and refuses exactly the same segments, with the same errors."""

from __future__ import annotations

import random
from collections.abc import Callable

import jwt
import pytest

from cds.security.tokens import StrictJws

ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
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
    near = ALPHABET + b"=+/. \n\x00\xff"
    decoded = 0
    for _ in range(3000):
        segment = bytes(chance.choice(near) for _ in range(chance.randrange(0, 12)))
        ours = outcome(StrictJws._decode_base64url_segment, segment)
        assert ours == outcome(jwt.PyJWS._decode_base64url_segment, segment), segment
        decoded += ours[0] == "decoded"
    assert decoded > 100  # the sample holds valid segments too, not only refusals
