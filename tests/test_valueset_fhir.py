"""The value sets as FHIR R4 ValueSet resources: GET /fhir/ValueSet[/{id}] and
`cds rules export --fhir DIR`, each resource valid against fhir.resources' R4B models."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.valueset import ValueSet

from cds import __version__
from cds.app import create_app
from cds.catalogue import Catalogue
from cds.cli import main
from cds.settings import Settings
from cds.transparency.value_set_resources import LOCAL_CODE_EXTENSION
from cds.valuesets import ICD10CM
from tests.conftest import changed
from tests.wire_rules import empty_values

pytestmark = pytest.mark.anyio

BASE = "https://cds.example.org"
FHIR_JSON = "application/fhir+json"


@pytest.fixture
async def client(settings: Settings, catalogue: Catalogue) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(changed(settings, public_base_url=BASE), catalogue=catalogue)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c,
    ):
        yield c


def _codes(resource: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [
        (c["system"], c["code"], c.get("display", ""))
        for c in resource["expansion"].get("contains", [])
    ]


async def test_the_bundle_holds_every_value_set_each_a_valid_r4_value_set(
    client: httpx.AsyncClient, catalogue: Catalogue
) -> None:
    answer = await client.get("/fhir/ValueSet")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == FHIR_JSON
    bundle = answer.json()
    Bundle.model_validate(bundle)
    assert bundle["type"] == "searchset"
    assert bundle["total"] == len(catalogue.valuesets.by_id) == len(bundle["entry"])
    assert [e["resource"]["id"] for e in bundle["entry"]] == list(catalogue.valuesets.by_id)
    for entry in bundle["entry"]:
        ValueSet.model_validate(entry["resource"])
        assert entry["fullUrl"] == f"{BASE}/fhir/ValueSet/{entry['resource']['id']}"
    assert empty_values(bundle) == []


async def test_each_value_set_reads_alone_with_its_shipped_codes_and_displays(
    client: httpx.AsyncClient, catalogue: Catalogue
) -> None:
    for vs_id, vs in catalogue.valuesets.by_id.items():
        answer = await client.get(f"/fhir/ValueSet/{vs_id}")
        assert answer.status_code == 200
        assert answer.headers["content-type"] == FHIR_JSON
        resource = answer.json()
        ValueSet.model_validate(resource)
        assert empty_values(resource) == []
        assert resource["url"] == f"{BASE}/fhir/ValueSet/{vs_id}"
        assert resource["title"] == vs.title
        assert resource["status"] == "active"
        assert resource["name"][0].isupper()
        assert resource["expansion"]["timestamp"]
        assert vs.file is not None
        exact = [(c.system, c.code, c.display) for c in vs.file.codes if c.match == "exact"]
        assert _codes(resource) == exact, vs_id


async def test_an_icd10cm_prefix_is_a_compose_filter_and_never_a_listed_code(
    client: httpx.AsyncClient, catalogue: Catalogue
) -> None:
    with_prefixes = [vs for vs in catalogue.valuesets.by_id.values() if vs.prefixes]
    assert with_prefixes
    for vs in with_prefixes:
        resource = (await client.get(f"/fhir/ValueSet/{vs.id}")).json()
        filters = [
            f
            for include in resource["compose"]["include"]
            for f in include.get("filter", [])
            if include["system"] == ICD10CM
        ]
        assert vs.file is not None
        prefixes = [c.code for c in vs.file.codes if c.match == "prefix"]
        assert filters == [{"property": "concept", "op": "is-a", "value": p} for p in prefixes]
        assert not {code for _, code, _ in _codes(resource)} & set(prefixes)
        # The expansion is not the whole set, so it claims no total.
        assert "total" not in resource["expansion"]
        assert "is-a" in resource["description"]


async def test_a_carve_out_under_a_prefix_is_excluded_in_compose(
    client: httpx.AsyncClient, catalogue: Catalogue
) -> None:
    carved = [vs for vs in catalogue.valuesets.by_id.values() if vs.carve_out]
    assert carved
    for vs in carved:
        resource = (await client.get(f"/fhir/ValueSet/{vs.id}")).json()
        excluded = {
            (exclude["system"], concept["code"])
            for exclude in resource["compose"]["exclude"]
            for concept in exclude["concept"]
        }
        assert vs.file is not None
        assert excluded == {(c.system, c.code) for c in vs.file.carve_out}


async def test_a_text_only_value_set_says_how_it_matches(client: httpx.AsyncClient) -> None:
    resource = (await client.get("/fhir/ValueSet/b12-result")).json()
    ValueSet.model_validate(resource)
    assert "compose" not in resource
    assert resource["expansion"]["total"] == 0
    assert "cobalamin" in resource["description"]


async def test_an_unknown_value_set_is_a_404_operation_outcome(client: httpx.AsyncClient) -> None:
    answer = await client.get("/fhir/ValueSet/no-such-set")
    assert answer.status_code == 404
    assert answer.headers["content-type"] == FHIR_JSON
    OperationOutcome.model_validate(answer.json())
    assert "no-such-set" in answer.json()["issue"][0]["diagnostics"]


def test_rules_export_writes_one_valid_file_per_value_set(
    tmp_path: Path,
    catalogue: Catalogue,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CDS_PUBLIC_BASE_URL", BASE)
    out = tmp_path / "fhir" / "valuesets"
    assert main(["rules", "export", "--fhir", str(out)]) == 0
    assert f"wrote {len(catalogue.valuesets.by_id)} FHIR ValueSet files" in capsys.readouterr().out
    files = sorted(out.glob("*.json"))
    assert sorted(f.stem for f in files) == sorted(catalogue.valuesets.by_id)
    for path in files:
        resource = json.loads(path.read_text(encoding="utf-8"))
        ValueSet.model_validate(resource)
        assert resource["id"] == path.stem
        assert resource["url"] == f"{BASE}/fhir/ValueSet/{path.stem}"


def test_rules_export_says_which_directory_it_cannot_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory", encoding="utf-8")
    assert main(["rules", "export", "--fhir", str(blocker / "out")]) == 2
    err = capsys.readouterr().err
    assert str(blocker) in err
    assert "cannot write the value sets" in err


def test_rules_export_refuses_a_broken_catalogue_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CDS_RULES_DIR", str(tmp_path / "no-rules"))
    out = tmp_path / "out"
    assert main(["rules", "export", "--fhir", str(out)]) == 2
    assert "rules directory not found" in capsys.readouterr().err
    assert not out.exists()


async def test_a_sites_local_code_is_marked_with_its_note_and_changes_the_version(
    settings: Settings, tmp_path: Path
) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(
        "valuesets:\n  b12-result:\n    add:\n"
        "      - system: https://lab.example-hospital.org/CodeSystem/orderables\n"
        "        code: B12S\n        display: Vitamin B12, serum\n"
        "        note: Mapped by the laboratory informatics lead\n",
        encoding="utf-8",
    )
    app = create_app(changed(settings, public_base_url=BASE, site_config=site))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        local = (await c.get("/fhir/ValueSet/b12-result")).json()
        shipped = (await c.get("/fhir/ValueSet/b12")).json()
    ValueSet.model_validate(local)
    marked = {
        "url": LOCAL_CODE_EXTENSION,
        "valueString": "Mapped by the laboratory informatics lead",
    }
    [contained] = local["expansion"]["contains"]
    assert (contained["code"], contained["extension"]) == ("B12S", [marked])
    [concept] = local["compose"]["include"][0]["concept"]
    assert concept["extension"] == [marked]
    assert local["version"].startswith(f"{__version__}+site.")
    assert shipped["version"] == __version__
    assert not any("extension" in c for c in shipped["expansion"].get("contains", []))
