"""A request's prefetch Bundle entries left undecoded (msgspec.Raw) until the record's sift has
read their heads: the same record, counts and Patient as the same prefetch decoded whole."""

from __future__ import annotations

from typing import Any

import msgspec
import orjson

from cds.catalogue import Catalogue
from cds.record.matching import MatchMemo
from cds.request_json import parse_json
from tests.test_bundle_sift import _prefetch, _read_once


def _as_sent(prefetch: dict[str, Any]) -> dict[str, Any]:
    """``prefetch`` as a hook request's body is read: through the body's bytes."""
    read = parse_json(orjson.dumps({"hook": "patient-view", "prefetch": prefetch}))
    return dict(read["prefetch"])


def test_bundle_entries_are_left_undecoded_when_the_body_is_read() -> None:
    read = _as_sent(_prefetch())
    bundles = [v for v in read.values() if isinstance(v, dict) and v.get("entry")]
    assert bundles
    assert all(type(e) is msgspec.Raw for bundle in bundles for e in bundle["entry"])


def test_undecoded_entries_build_the_record_decoded_entries_build(catalogue: Catalogue) -> None:
    service = catalogue.services["back-to-foot"]
    raw_memo, decoded_memo = MatchMemo(catalogue.valuesets), MatchMemo(catalogue.valuesets)
    for _ in range(3):  # cold, then with the memo remembering the noise the sift drops unread
        assert _read_once(service, _as_sent(_prefetch()), raw_memo) == _read_once(
            service, _prefetch(), decoded_memo
        )
    assert raw_memo.unmatched
