"""A read-only FHIR R4 endpoint over the demo patients, for ``cds demo`` and the playground."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import parse_qsl

from fastapi import APIRouter, FastAPI, Request
from starlette.responses import Response

from cds.api.responses import JsonResponse
from cds.demo import DemoData, load_demo
from cds.errors import CdsError, operation_outcome

DEMO_FHIR_PREFIX = "/demo/fhir"
# The playground finds the endpoint by this route name, so it works wherever it is mounted.
SEARCH_ROUTE = "demo-fhir-search"


class FhirJsonResponse(JsonResponse):
    """FHIR's own JSON media type (FHIR R4 http.html#mime-type)."""

    media_type = "application/fhir+json"


def _outcome(error: CdsError) -> FhirJsonResponse:
    return FhirJsonResponse(operation_outcome(error), status_code=error.status_code)


def _base(request: Request, prefix: str) -> str:
    return str(request.base_url).rstrip("/") + prefix


def demo_fhir_router(demo: DemoData | None = None, prefix: str = DEMO_FHIR_PREFIX) -> APIRouter:
    """Routes answering FHIR reads and searches over ``demo`` (default: demo/patients)."""
    data = demo or load_demo()
    router = APIRouter(prefix=prefix, tags=["demo FHIR server"])

    def search(request: Request, resource_type: str, params: Sequence[tuple[str, str]]) -> Response:
        try:
            bundle = data.search(resource_type, params, base_url=_base(request, prefix))
        except CdsError as exc:
            return _outcome(exc)
        return FhirJsonResponse(bundle)

    @router.get("/metadata")
    async def capabilities() -> Response:
        """A minimal CapabilityStatement: read and search, R4."""
        return FhirJsonResponse(
            {
                "resourceType": "CapabilityStatement",
                "status": "active",
                "kind": "instance",
                "fhirVersion": "4.0.1",
                "format": ["application/fhir+json"],
                "rest": [{"mode": "server"}],
            }
        )

    @router.get("/{resource_type}", name=SEARCH_ROUTE)
    async def search_get(resource_type: str, request: Request) -> Response:
        """FHIR search: patient/subject, code, status, category, _id, _count (with next links)."""
        return search(request, resource_type, request.query_params.multi_items())

    @router.post("/{resource_type}/_search")
    async def search_post(resource_type: str, request: Request) -> Response:
        """FHIR search by POST (form-encoded), as the CDS Hooks sandbox sends it first."""
        form = parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
        return search(request, resource_type, [*request.query_params.multi_items(), *form])

    @router.get("/{resource_type}/{resource_id}")
    async def read(resource_type: str, resource_id: str) -> Response:
        """FHIR read of one demo resource."""
        try:
            return FhirJsonResponse(data.read(resource_type, resource_id))
        except CdsError as exc:
            return _outcome(exc)

    return router


def mount_demo_fhir(app: FastAPI, demo: DemoData | None = None) -> None:
    """Add the demo FHIR endpoint to ``app`` at ``/demo/fhir`` (``cds demo`` does this)."""
    app.include_router(demo_fhir_router(demo))
