"""A big request's prefetch Bundle entries left undecoded (msgspec.Raw) until the record's sift
has read their heads: every body is judged as ``orjson.loads`` judges it whole (read the same,
or refused with orjson's message, unaudited), and the record, counts and answers are the ones
the same prefetch decoded whole gives.

The probes below are small bodies read as a body from ``RAW_FROM_BYTES`` up is (``raw_from=0``);
through the service, the bodies are the heavy bench chart's, which is past it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import httpx
import msgspec
import orjson
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.generate import make_request
from cds.app import create_app
from cds.catalogue import Catalogue
from cds.data.patient_data import read_prefetch
from cds.data.prefetch import BundleResources, _holds_read_resource, entry_resource
from cds.errors import InvalidRequest
from cds.invocation import _Call, _evaluated, _Waiting, parse
from cds.record.matching import MatchMemo
from cds.request_json import RAW_FROM_BYTES, EntryNotJson, parse_json
from cds.settings import Settings
from cds.store.schema import invocations
from tests.conftest import changed, serving
from tests.test_bundle_sift import _any_entry, _bundle, _prefetch, _read_once

pytestmark = pytest.mark.anyio

SERVICE = "/cds-services/back-to-foot"
CONDITIONS = "conditions"  # a Bundle key of the bench charts: its entries are left undecoded


def _as_sent(prefetch: dict[str, Any]) -> dict[str, Any]:
    """``prefetch`` as a hook request's body is read: through the body's bytes."""
    read = parse_json(orjson.dumps({"hook": "patient-view", "prefetch": prefetch}), raw_from=0)
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


# --------------------------------------------------------------------------- the body's verdict

_SMALL = make_request("small")
_PLACE = b'"@entry@"'


def _chart_with(*entries: bytes, alone: bool = False, chart: dict[str, Any] = _SMALL) -> bytes:
    """The bench ``chart`` with ``entries`` (raw JSON) added to its conditions Bundle, after
    its own entries, or as its only entries."""
    request = orjson.loads(orjson.dumps(chart))
    bundle = request["prefetch"][CONDITIONS]
    bundle["entry"] = ([] if alone else bundle["entry"]) + ["@entry@"] * len(entries)
    body = orjson.dumps(request)
    for entry in entries:
        body = body.replace(_PLACE, entry, 1)
    return body


def _resource(members: bytes) -> bytes:
    return b'{"resource":{"resourceType":"Condition","id":"odd",' + members + b"}}"


def _noise(members: bytes) -> bytes:
    """An entry no rule reads (a Basic): the sift drops it without decoding it."""
    return b'{"resource":{"resourceType":"Basic","id":"odd",' + members + b"}}"


def _nested(depth: int) -> bytes:
    return _noise(b'"x":' + b"[" * depth + b"]" * depth)


_BODIES: dict[str, bytes] = {
    "small": orjson.dumps(_SMALL),
    "typical": orjson.dumps(make_request("typical")),
    **{f"entry nested {d} deep": _chart_with(_nested(d)) for d in (60, 900, 1010, 1030, 5000)},
    # The body nests one level past orjson's limit; the entry alone would not.
    "entry one level past the body's limit": _chart_with(_nested(1019)),
    "invalid UTF-8 in an entry": _chart_with(_noise(b'"note":"\xff"')),
    "a number past a double in an entry no rule reads": _chart_with(_noise(b'"x":1e999')),
    "the same, with a plus sign": _chart_with(_noise(b'"x":1E+400')),
    "the same, negative": _chart_with(_noise(b'"x":[0, -1.5e999]')),
    "the same, 400 digits": _chart_with(_noise(b'"x":' + b"9" * 400)),
    "the same, 250 digits and an exponent": _chart_with(_noise(b'"x":' + b"1" * 250 + b"e60")),
    "the same, just past": _chart_with(_noise(b'"x":1.7976931348623159e308')),
    "the largest double": _chart_with(_noise(b'"x":1.7976931348623157e308')),
    "a tiny number": _chart_with(_noise(b'"x":1e-999')),
    "an exponent of three digits within range": _chart_with(_noise(b'"x":1e100')),
    "a number past a double in a read entry": _chart_with(_resource(b'"x":1e999')),
    "a number past a double in the concept": _chart_with(_resource(b'"code":{"n":1e999}')),
    "a number past a double as the only entry": _chart_with(_noise(b'"x":1e999'), alone=True),
    "an id that looks like an exponent": _chart_with(_noise(b'"id":"3e456789-0e12"')),
    "a string that looks like a number past a double": _chart_with(_noise(b'"t":"a:1e999,b"')),
    # The check's shapes drop letters and whitespace: these read as orjson reads them too.
    "the same, with letters between its colon and digits": _chart_with(_noise(b'"t":"a: b1e999"')),
    "a number past a double after whitespace": _chart_with(_noise(b'"x" :\n\t [ 0 ,\r\n 1e999 ]')),
    "digits between letters, 200 of them": _chart_with(_noise(b'"t":"' + b"a1" * 200 + b'"')),
    "a pretty-printed chart": orjson.dumps(_SMALL, option=orjson.OPT_INDENT_2),
    "a malformed entry": _chart_with(_noise(b'"x":,')),
    "an OperationOutcome only": _chart_with(
        b'{"resource":{"resourceType":"OperationOutcome"}}', alone=True
    ),
    "an entry that is no object": _chart_with(b'"x"', b"7", b"null", b"[]"),
    "a Bundle member past a double": orjson.dumps(_SMALL).replace(
        b'"resourceType":"Bundle"', b'"resourceType":"Bundle","total":1e999', 1
    ),
    "a link past a double": orjson.dumps(_SMALL).replace(
        b'"resourceType":"Bundle"', b'"resourceType":"Bundle","link":[{"n":1e999}]', 1
    ),
    "duplicate members in an entry": _chart_with(
        _resource(b'"code":{"coding":[{"code":"M54.16"}]},"code":{"coding":[{"code":"x"}]}'),
        b'{"resource":{"resourceType":"Basic"},"resource":{"resourceType":"Condition"}}',
    ),
    "duplicate members in the envelope": b'{"hook":"order-sign",' + orjson.dumps(_SMALL)[1:],
    "an envelope nested 70 deep": orjson.dumps(_SMALL)[:-1]
    + b',"extension":{"a":'
    + b"[" * 70
    + b"]" * 70
    + b"}}",
    "an envelope member the wire does not name": orjson.dumps({**_SMALL, "hook_instance": "x"}),
    "too many entries": orjson.dumps(
        {**_SMALL, "prefetch": {CONDITIONS: {"resourceType": "Bundle", "entry": [{}] * 50_001}}}
    ),
    "no object": b"[1,2]",
    "prefetch a list": orjson.dumps({**_SMALL, "prefetch": [1]}),
    "prefetch empty": orjson.dumps({**_SMALL, "prefetch": {}}),
    "prefetch null": orjson.dumps({**_SMALL, "prefetch": None}),
    "a prefetch value that is no object": orjson.dumps({**_SMALL, "prefetch": {CONDITIONS: 7}}),
    "entry no list": orjson.dumps(
        {**_SMALL, "prefetch": {CONDITIONS: {"resourceType": "Bundle", "entry": {"a": 1}}}}
    ),
    "a Bundle without entries": orjson.dumps(
        {**_SMALL, "prefetch": {CONDITIONS: {"resourceType": "Bundle", "type": "searchset"}}}
    ),
    "not JSON": b'{"hook": "patient-view",',
}


def _as_orjson_reads(body: Any) -> Any:
    """``body`` with every prefetch entry left undecoded decoded by orjson."""
    prefetch = body.get("prefetch") if isinstance(body, dict) else None
    for value in prefetch.values() if isinstance(prefetch, dict) else ():
        entries = value.get("entry") if isinstance(value, dict) else None
        if isinstance(entries, list):
            value["entry"] = [
                orjson.loads(memoryview(e)) if type(e) is msgspec.Raw else e for e in entries
            ]
    return body


def _as_classified(body: Any) -> Any:
    """What the service reads of a parsed body: of a prefetch Bundle with a list of entries,
    its type, entries and links (``cds.data.prefetch``), all else as it is."""
    prefetch = body.get("prefetch") if isinstance(body, dict) else None
    if not isinstance(prefetch, dict):
        return body
    kept = ("resourceType", "entry", "link")
    return {
        **body,
        "prefetch": {
            key: {k: value[k] for k in kept if k in value}
            if isinstance(value, dict)
            and value.get("resourceType") == "Bundle"
            and isinstance(value.get("entry"), list)
            else value
            for key, value in prefetch.items()
        },
    }


def _orjson_verdict(body: bytes) -> tuple[str, Any]:
    try:
        return "read", _as_classified(orjson.loads(body))
    except orjson.JSONDecodeError as exc:
        return "refused", f"The body is not valid JSON: {exc}"


def _verdict(body: bytes) -> tuple[str, Any]:
    try:
        return "read", _as_classified(_as_orjson_reads(parse_json(body, raw_from=0)))
    except InvalidRequest as exc:
        return "refused", exc.diagnostics


@pytest.mark.parametrize("name", list(_BODIES))
def test_a_body_is_read_or_refused_as_orjson_reads_it_whole(name: str) -> None:
    body = _BODIES[name]
    verdict, expected = _verdict(body), _orjson_verdict(body)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(limit + 2_000)  # comparing what is nested 1,000 deep
    try:
        assert verdict == expected
    finally:
        sys.setrecursionlimit(limit)


# Numbers of any size and strings made of what numbers and the check's shapes are made of, with
# whitespace where JSON allows it: the shapes drop letters and whitespace, so that is where a
# number past a double could hide from them.
_NUMBER = st.from_regex(r"\A-?(0|[1-9][0-9]{0,320})(\.[0-9]{1,3})?([eE][+-]?[0-9]{1,4})?\Z")
_TEXT = st.text(alphabet='0123456789eE+-.:,[ ab"\\', max_size=24).map(
    lambda text: orjson.dumps(text).decode()
)
_SPACE = st.sampled_from(["", " ", "\n  ", "\t"])


@st.composite
def _member_list(draw: st.DrawFn) -> bytes:
    members = []
    for i in range(draw(st.integers(1, 4))):
        values = [draw(st.one_of(_NUMBER, _TEXT)) for _ in range(draw(st.integers(1, 3)))]
        space = draw(_SPACE)
        value = values[0] if len(values) == 1 else f"[{space}{f'{space},'.join(values)}]"
        members.append(f'"m{i}"{space}:{draw(_SPACE)}{value}')
    return ",".join(members).encode()


@given(_member_list())
@settings(deadline=None)
def test_an_entry_of_numbers_and_number_like_strings_is_read_as_orjson_reads_it(
    members: bytes,
) -> None:
    body = _chart_with(_noise(members), alone=True)
    assert _verdict(body) == _orjson_verdict(body)


def test_the_odd_bodies_take_the_path_they_are_meant_to() -> None:
    """The list above holds bodies read with undecoded entries, and bodies orjson reads."""
    undecoded = {
        name
        for name, body in _BODIES.items()
        if _orjson_verdict(body)[0] == "read"
        and isinstance(read := parse_json(body, raw_from=0), dict)
        and isinstance(read.get("prefetch"), dict)
        and any(
            type(e) is msgspec.Raw
            for value in read["prefetch"].values()
            if isinstance(value, dict)
            for e in value.get("entry", ())
        )
    }
    assert {
        "small",
        "typical",
        "an id that looks like an exponent",
        "a tiny number",
        "a pretty-printed chart",
    } <= undecoded
    # Read by orjson whole, as the check cannot tell them from a number past a double.
    assert {
        "an exponent of three digits within range",
        "the same, with letters between its colon and digits",
        "digits between letters, 200 of them",
    }.isdisjoint(undecoded)


def test_a_body_under_the_size_is_read_by_orjson_whole_and_one_past_it_is_not() -> None:
    small, heavy = _BODIES["small"], orjson.dumps(make_request("heavy"))
    assert len(small) < RAW_FROM_BYTES <= len(heavy)
    assert type(parse_json(small)["prefetch"][CONDITIONS]["entry"][0]) is dict
    assert type(parse_json(heavy)["prefetch"][CONDITIONS]["entry"][0]) is msgspec.Raw


# --------------------------------------------------------------------------- through the service

_HEAVY = make_request("heavy")

# Bodies past RAW_FROM_BYTES that orjson refuses: each is refused by the service as orjson did.
_REFUSED_HEAVY = {
    "a number past a double in an entry no rule reads": _noise(b'"x":1e999'),
    "the same, 400 digits": _noise(b'"x":' + b"9" * 400),
    "a number past a double in a read entry": _resource(b'"x":1e999'),
    "invalid UTF-8 in an entry": _noise(b'"note":"\xff"'),
    "a malformed entry": _noise(b'"x":,'),
    "an entry nested 1,030 deep": _nested(1030),
    "entry one level past the body's limit": _nested(1019),
}


async def _post(client: httpx.AsyncClient, body: bytes) -> httpx.Response:
    return await client.post(SERVICE, content=body, headers={"content-type": "application/json"})


async def _audited(app: FastAPI) -> list[dict[str, Any]]:
    """The audit rows written so far, without what differs between any two calls."""
    await app.state.parts.audit.flush()
    async with app.state.parts.store.engine.connect() as conn:
        rows = (await conn.execute(sa.select(invocations))).mappings().all()
    return [
        {k: v for k, v in row.items() if k not in {"id", "received_at", "duration_ms"}}
        for row in rows
    ]


async def test_a_number_past_a_double_in_noise_is_refused_unaudited_cold_and_warm(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """The noise Condition below is dropped unread once its concept is remembered to match no
    value set; the verdict on its number stays orjson's, whatever the call before it read."""
    noise = next(
        e["resource"]
        for e in _HEAVY["prefetch"][CONDITIONS]["entry"]
        if e["resource"]["id"].startswith("n-")
    )
    entry = b'{"resource":' + orjson.dumps(noise)[:-1] + b',"extension":[{"valueDecimal":1e999}]}}'
    body = _chart_with(entry, chart=_HEAVY)
    expected = _orjson_verdict(body)
    assert expected[0] == "refused"
    for _ in range(2):
        answer = await _post(client, body)
        assert (answer.status_code, answer.json()["issue"][0]["diagnostics"]) == (400, expected[1])
        assert (await _post(client, orjson.dumps(_HEAVY))).status_code == 200  # teaches the memo
    assert [row["status_code"] for row in await _audited(app)] == [200, 200]


@pytest.mark.parametrize("name", list(_REFUSED_HEAVY))
async def test_a_body_orjson_refuses_is_a_400_with_its_message_and_no_audit_row(
    app: FastAPI, client: httpx.AsyncClient, name: str
) -> None:
    body = _chart_with(_REFUSED_HEAVY[name], chart=_HEAVY)
    assert len(body) >= RAW_FROM_BYTES
    refused, message = _orjson_verdict(body)
    assert refused == "refused"
    answer = await _post(client, body)
    assert answer.status_code == 400
    assert answer.json()["issue"][0]["diagnostics"] == message
    assert await _audited(app) == []


async def test_a_chart_answers_and_audits_as_the_same_chart_read_by_orjson_whole(
    settings: Settings, catalogue: Catalogue, tmp_path: Path
) -> None:
    """The same heavy chart twice over (cold, then with its noise remembered): once with its
    entries left undecoded, once read by orjson whole (a Bundle ``total`` with a three-digit
    exponent, which no one reads, sends it there)."""
    raw = orjson.dumps(_HEAVY)
    whole = raw.replace(b'"resourceType":"Bundle"', b'"resourceType":"Bundle","total":1e100', 1)
    assert type(parse_json(raw)["prefetch"][CONDITIONS]["entry"][0]) is msgspec.Raw
    assert type(parse_json(whole)["prefetch"][CONDITIONS]["entry"][0]) is dict
    seen: list[tuple[list[bytes], list[dict[str, Any]]]] = []
    for path, body in (("raw", raw), ("whole", whole)):
        own = changed(settings, database_url=f"sqlite+aiosqlite:///{tmp_path / path}.db")
        app = create_app(own, catalogue=catalogue)
        async with serving(app) as client:
            answers = [(await _post(client, body)).content for _ in range(2)]
            seen.append((answers, await _audited(app)))
    assert seen[0] == seen[1]
    assert [row["status_code"] for row in seen[0][1]] == [200, 200]


# --------------------------------------------------------------------------- after a fetch


def test_an_undecoded_entry_orjson_refuses_is_refused_when_read() -> None:
    """msgspec's reading and :func:`parse_json`'s checks leave no such entry (this one is made
    by hand); should one come, reading it refuses the call rather than skipping it."""
    bundle = BundleResources([msgspec.Raw(_noise(b'"x":1e999')), msgspec.Raw(_noise(b""))])
    with pytest.raises(EntryNotJson):
        bundle.listed()


async def test_an_entry_refused_after_a_fetch_refuses_the_call_unaudited_with_orjsons_message(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """A call that waited for the FHIR server reads its prefetched entries only then: one
    orjson refuses gives the answer the body's parse gave before entries were left undecoded
    (400, orjson's message for the body), and the call is not failed, so not audited."""
    entry = _resource(b'"code":{"coding":[{"code":"M54.16"}]},"x":1e999')
    body = _chart_with(entry)
    parts = app.state.parts
    service, request, context = parse(parts, "back-to-foot", orjson.dumps(_SMALL))
    gathering = read_prefetch(service.prefetch, service.required_prefetch, request, None)
    data = gathering.finish()
    data.resources[CONDITIONS] = BundleResources([msgspec.Raw(entry)])
    call = _Call(service, request.hook, request.hook_instance, context.patient_id)
    call.waiting = _Waiting(request, context, gathering, body)
    with pytest.raises(InvalidRequest) as refused:
        _evaluated(parts, call, data)
    assert refused.value.diagnostics == _orjson_verdict(body)[1]
    assert (call.status, call.failure) == (200, None)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_any_entry(), max_size=6))
def test_whether_undecoded_entries_hold_a_resource_read_is_told_from_their_heads(
    entries: list[Any],
) -> None:
    """Classification asks whether a Bundle holds any resource that is read: of undecoded
    entries, the heads answer as the entries decoded whole do, and no entry is decoded."""
    body = orjson.dumps({"prefetch": {"conditions": _bundle(*entries)}})
    raw = BundleResources(parse_json(body, raw_from=0)["prefetch"]["conditions"]["entry"])
    decoded = BundleResources(orjson.loads(body)["prefetch"]["conditions"]["entry"])
    assert raw.holds_any() == decoded.holds_any()
    assert raw._decoded == {}


def test_an_entry_whose_head_msgspec_cannot_read_is_read_whole_as_before() -> None:
    """Nested past both decoders' limits: orjson's refusal, as when the entry was read whole."""
    nested = b"[" * 3000 + b"]" * 3000
    entry = msgspec.Raw(b'{"resource":{"resourceType":"Condition"},"search":' + nested + b"}")
    with pytest.raises(EntryNotJson) as from_head:
        _holds_read_resource(entry)
    with pytest.raises(EntryNotJson) as whole:
        entry_resource(entry)
    assert from_head.value.diagnostics == whole.value.diagnostics
