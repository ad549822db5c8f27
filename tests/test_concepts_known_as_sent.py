"""An undecoded entry's main concept known by the bytes it was sent in: the record's sift drops
an entry whose concept comes in the very bytes of one it found unmatched before, without
decoding the concept or the entry, reads whole one whose concept it found matching a set,
without decoding the concept again, and judges every other concept decoded, as before.

The memo keeps such bytes per resource type, only for concepts of terminology alone, within
its bounds, and forgets them with the unmatched concepts they were found among.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cds.catalogue import Catalogue
from cds.data.prefetch import BundleResources
from cds.record import build
from cds.record.matching import REMEMBERED_SENT_BYTES, MatchMemo
from cds.request_json import parse_json
from tests.test_bundle_sift import (
    NOISE,
    NOISE_CONDITION,
    RADICULOPATHY,
    _any_entry,
    _builder,
    _bundle,
    _condition,
    _match,
    _observation,
    _prefetch,
    _read_once,
)

B12_BY_TEXT: dict[str, Any] = {"coding": [{"system": NOISE, "code": "lab-b12"}], "text": "B12"}
"""Matched by its text for an Observation (the B12 result set reads Observations' text), and
by nothing for a Procedure."""


def _undecoded(*entries: Any) -> BundleResources:
    """A Bundle's entries as a big request's body leaves them: undecoded."""
    body = orjson.dumps({"prefetch": {"conditions": _bundle(*entries)}})
    bundle = parse_json(body, raw_from=0)["prefetch"]["conditions"]
    resources = BundleResources(bundle["entry"])
    assert resources.raw
    return resources


def _sift(catalogue: Catalogue, memo: MatchMemo, bundle: BundleResources) -> list[Any]:
    """What the sift keeps of ``bundle``; the record is built from it, as a call builds it
    (matching what is kept is what teaches the memo)."""
    builder = _builder(catalogue.services["back-to-foot"], memo)
    patients, pending = builder.sift([bundle])
    for resource in pending:
        builder.add(resource)
    return [*patients, *pending]


def _noise(count: int, concept: Any = NOISE_CONDITION) -> list[Any]:
    return [_match(_condition(f"noise-{i}", concept)) for i in range(count)]


def test_a_concept_sent_in_the_bytes_of_one_found_unmatched_drops_its_entry_undecoded(
    catalogue: Catalogue,
) -> None:
    memo = MatchMemo(catalogue.valuesets)
    # Cold, every noise Condition goes the whole way, and matching teaches the memo its
    # concept; the next call decodes the concept once and remembers its bytes.
    assert len(_sift(catalogue, memo, _undecoded(*_noise(3)))) == 3
    assert not memo.sent.get("Condition")  # not known yet: nothing to remember
    assert _sift(catalogue, memo, _undecoded(*_noise(1))) == []
    assert memo.sent["Condition"] == {orjson.dumps(NOISE_CONDITION): True}

    again = _undecoded(*_noise(5))
    assert _sift(catalogue, memo, again) == []
    assert again._decoded == {}  # no entry was read whole


def test_the_same_concept_sent_in_other_bytes_is_judged_decoded_and_remembered_as_sent(
    catalogue: Catalogue,
) -> None:
    memo = MatchMemo(catalogue.valuesets)
    _sift(catalogue, memo, _undecoded(*_noise(1)))
    _sift(catalogue, memo, _undecoded(*_noise(1)))
    reordered = {"coding": [{"display": "Condition 1 (synthetic)", "code": "cond-0001",
                             "system": NOISE}]}  # fmt: skip
    bundle = _undecoded(*_noise(2, reordered))
    assert _sift(catalogue, memo, bundle) == []
    assert memo.sent["Condition"] == {
        orjson.dumps(NOISE_CONDITION): True,
        orjson.dumps(reordered): True,
    }


@pytest.mark.parametrize(
    "concept",
    [
        {**NOISE_CONDITION, "extension": [{"url": "https://example.org/x", "valueString": "y"}]},
        {"coding": [{**NOISE_CONDITION["coding"][0], "id": "c1"}]},
        {**NOISE_CONDITION, "id": "concept-1"},
    ],
    ids=["an extension", "a coding's id", "the concept's id"],
)
def test_a_concept_with_more_than_terminology_is_dropped_but_never_remembered_as_sent(
    catalogue: Catalogue, concept: Any
) -> None:
    memo = MatchMemo(catalogue.valuesets)
    _sift(catalogue, memo, _undecoded(*_noise(1)))
    _sift(catalogue, memo, _undecoded(*_noise(1)))
    assert _sift(catalogue, memo, _undecoded(*_noise(3, concept))) == []
    assert memo.sent["Condition"] == {orjson.dumps(NOISE_CONDITION): True}


def test_bytes_known_for_one_type_never_drop_another_types_resource(
    catalogue: Catalogue,
) -> None:
    memo = MatchMemo(catalogue.valuesets)
    procedures = [
        _match({**_condition(f"proc-{i}", B12_BY_TEXT), "resourceType": "Procedure"})
        for i in range(2)
    ]
    _sift(catalogue, memo, _undecoded(*procedures))
    _sift(catalogue, memo, _undecoded(*procedures))
    assert memo.sent["Procedure"] == {orjson.dumps(B12_BY_TEXT): True}

    result = _observation("b12", B12_BY_TEXT)
    del result["valueQuantity"]
    kept = _sift(catalogue, memo, _undecoded(_match(result)))
    assert [r["id"] for r in kept] == ["b12"]


def test_what_is_remembered_as_sent_is_bounded_and_forgotten_with_the_unmatched(
    catalogue: Catalogue,
) -> None:
    memo = MatchMemo(catalogue.valuesets, concept_limit=2)
    concept: dict[str, Any] = {"coding": [{"system": NOISE, "code": "c"}]}
    memo.remember_sent("Condition", b"1", concept, unmatched=True)
    memo.remember_sent("Condition", b"2", concept, unmatched=False)
    memo.remember_sent("Condition", b"2", concept, unmatched=False)  # known: nothing to add
    assert memo.sent == {"Condition": {b"1": True, b"2": False}}
    memo.remember_sent("Procedure", b"3", concept, unmatched=True)  # past the bound: anew
    assert memo.sent == {"Procedure": {b"3": True}}

    memo.remember_sent("Procedure", b"x" * (REMEMBERED_SENT_BYTES + 1), concept, unmatched=True)
    assert memo.sent == {"Procedure": {b"3": True}}

    memo.remember_concept(("Condition", NOISE, "a", None, None), (frozenset(), frozenset()))
    memo.remember_concept(("Condition", NOISE, "b", None, None), (frozenset(), frozenset()))
    memo.remember_concept(("Condition", NOISE, "c", None, None), (frozenset(), frozenset()))
    assert memo.sent == {}  # the concepts filled up: what was judged by them went with them

    memo.remember_sent("Condition", b"1", concept, unmatched=True)
    memo.clear()
    assert memo.sent == {}


def test_a_concept_found_matching_a_set_sends_its_entries_on_without_being_decoded_again(
    catalogue: Catalogue, monkeypatch: pytest.MonkeyPatch
) -> None:
    memo = MatchMemo(catalogue.valuesets)
    radiculopathy = [_match(_condition(f"radic-{i}", RADICULOPATHY)) for i in range(2)]
    assert len(_sift(catalogue, memo, _undecoded(*radiculopathy))) == 2  # cold: matched
    assert len(_sift(catalogue, memo, _undecoded(*radiculopathy))) == 2
    assert memo.sent["Condition"] == {orjson.dumps(RADICULOPATHY): False}

    def judged_again(*_: object) -> bool:
        raise AssertionError("a concept known by its bytes was decoded again")

    monkeypatch.setattr(build, "_sent_unmatched", judged_again)
    assert len(_sift(catalogue, memo, _undecoded(*radiculopathy))) == 2


def _indented(value: Any) -> bytes:
    return json.dumps(value, indent=1).encode()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(_any_entry(), min_size=1, max_size=10),
    st.sampled_from([orjson.dumps, _indented]),
)
def test_entries_sent_spaced_or_compact_build_the_record_decoded_ones_build(
    catalogue: Catalogue, entries: list[Any], dumps: Any
) -> None:
    """Concepts judged by their bytes, whatever spacing the EHR's JSON has, cold and warm."""
    service = catalogue.services["back-to-foot"]
    body = dumps({"prefetch": {**_prefetch(), "conditions": _bundle(*entries)}})
    raw_memo, decoded_memo = MatchMemo(catalogue.valuesets), MatchMemo(catalogue.valuesets)
    for _ in range(3):
        assert _read_once(service, parse_json(body, raw_from=0)["prefetch"], raw_memo) == (
            _read_once(service, orjson.loads(body)["prefetch"], decoded_memo)
        )
