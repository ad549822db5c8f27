"""A FHIR server that sends too much costs a call its byte caps, never the worker's memory."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Final

import httpx
import pytest

from cds.data.patient_data import PatientData
from cds.metrics import Metrics
from cds.settings import Settings
from tests.hostile_fhir import hostile_fhir_server
from tests.patient_data import fhir_access, hook_request, read_patient_data
from tests.served import Server, cds_serve

BUDGET_SECONDS: Final = Settings().request_budget_seconds
CALL_CAP_MIB: Final = Settings().fhir_max_call_bytes / 2**20
# What the bytes one call may read add to the worker's peak: the call cap, twice more for the
# copies on the way (socket reads, HTTP parser, chunks) and the allocator, and nothing that
# scales with what the server sends (measured: 44-64 MiB; before the caps, 1.35 GB).
PEAK_GROWTH_BOUND_MIB: Final = 3 * CALL_CAP_MIB
HOSTILE_KEYS: Final = 8  # back-to-foot's ten keys less the patient and the conditions
ENV: Final = {"CDS_ENV": "test", "CDS_FHIR_ALLOW_HTTP": "true", "CDS_FHIR_OPEN_SERVER": "true"}


def _peak_rss_mib(server: Server) -> float:
    """The worker's peak resident set size so far (VmHWM), in MiB: one worker, the process."""
    assert server.process is not None
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc/<pid>/status")


def _call(service: Server, fhir_server: str) -> httpx.Response:
    """A patient-view call with no prefetch: every key is read from ``fhir_server``.

    The client waits the request budget and a margin for evaluation, no longer: a call still
    reading a hostile server past its budget fails the test by timing out.
    """
    body: dict[str, Any] = {
        "hook": "patient-view",
        "hookInstance": "0e6f1c2a-6c1b-4c55-9d0f-3d3b8f7c2a10",
        "fhirServer": fhir_server,
        "context": {"userId": "Practitioner/example", "patientId": "p1"},
    }
    return httpx.post(
        f"{service.url}/cds-services/back-to-foot", json=body, timeout=BUDGET_SECONDS + 3.0
    )


def _too_large_count(service: Server) -> float:
    for line in httpx.get(f"{service.url}/metrics").text.splitlines():
        if line.startswith('cds_fhir_fetch_errors_total{kind="too_large"}'):
            return float(line.split()[-1])
    return 0.0


@pytest.mark.parametrize("behaviour", ["huge", "endless"])
def test_a_server_sending_too_much_leaves_its_keys_unavailable_within_the_byte_caps(
    tmp_path: Path, behaviour: str
) -> None:
    database = f"sqlite+aiosqlite:///{tmp_path / 'cds.db'}"
    with (
        hostile_fhir_server() as server,
        cds_serve(tmp_path / "cds.log", **ENV, CDS_DATABASE_URL=database) as service,
    ):
        fhir = server.url
        assert _call(service, f"{fhir}/honest/fhir").status_code == 200
        before = _peak_rss_mib(service)
        started = time.perf_counter()
        response = _call(service, f"{fhir}/{behaviour}/fhir")
        elapsed = time.perf_counter() - started
        grown = _peak_rss_mib(service) - before
        too_large = _too_large_count(service)
    print(f"{behaviour}: answered in {elapsed:.2f} s, peak RSS +{grown:.1f} MiB")
    assert response.status_code == 200
    assert response.json() == {"cards": []}
    assert too_large == HOSTILE_KEYS
    assert grown <= PEAK_GROWTH_BOUND_MIB


TEMPLATES: Final = {
    "patient": "Patient/{{context.patientId}}",
    "observations": "Observation?patient={{context.patientId}}",
    "labs": "Observation?patient={{context.patientId}}&category=laboratory",
}


async def _gather_from(fhir_server: str, **caps: int) -> PatientData:
    settings = Settings.model_validate(
        {"env": "test", "fhir_allow_http": True, "fhir_open_server": True, **caps}
    )
    metrics = Metrics(service_ids=[], rule_ids=[])
    request = hook_request({"patientId": "p1"}, fhir_server=fhir_server)
    access = fhir_access(settings, metrics=metrics)
    data = await read_patient_data(access, TEMPLATES, request, {"patient"})
    counted = metrics.registry.get_sample_value(
        "cds_fhir_fetch_errors_total", {"kind": "too_large"}
    )
    assert counted == len(data.unavailable), "every key over a cap is counted as too_large"
    return data


@pytest.mark.anyio
async def test_a_response_over_the_per_response_cap_makes_its_key_unavailable() -> None:
    with hostile_fhir_server() as server:
        fhir = server.url
        data = await _gather_from(f"{fhir}/huge/fhir", fhir_max_response_bytes=2**20)
    assert data.resources == {"patient": [{"resourceType": "Patient", "id": "p1"}]}
    assert set(data.unavailable) == {"observations", "labs"}
    assert all("CDS_FHIR_MAX_RESPONSE_BYTES" in why for why in data.unavailable.values())


@pytest.mark.anyio
async def test_the_per_call_cap_counts_every_response_of_the_call_together() -> None:
    """Each response stays under its own cap; together they pass the call's."""
    with hostile_fhir_server() as server:
        fhir = server.url
        data = await _gather_from(
            f"{fhir}/huge/fhir", fhir_max_response_bytes=64 * 2**20, fhir_max_call_bytes=3 * 2**20
        )
    assert set(data.unavailable) == {"observations", "labs"}
    assert all("CDS_FHIR_MAX_CALL_BYTES" in why for why in data.unavailable.values())


@pytest.mark.anyio
async def test_a_response_compressed_unasked_is_refused_unread() -> None:
    """A few kilobytes of gzip could inflate past every cap in one decoded chunk."""
    with hostile_fhir_server() as server:
        fhir = server.url
        settings = Settings(env="test", fhir_allow_http=True, fhir_open_server=True)
        request = hook_request({"patientId": "p1"}, fhir_server=f"{fhir}/gzip/fhir")
        labs = {"labs": TEMPLATES["labs"]}
        data = await read_patient_data(fhir_access(settings), labs, request)
    assert "compressed its response unasked" in data.unavailable["labs"]
