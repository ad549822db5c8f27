"""``/docs``: Swagger UI over this service's OpenAPI document, its assets served by the service.

FastAPI's own page loads Swagger UI from a public CDN, so it is blank on the hospital networks
this service runs in. The assets ship in the ``fastapi-offline`` wheel; where they are missing
the page is off rather than blank.
"""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

from cds.logs import log_fields

DOCS_URL = "/docs"
ASSETS_URL = "/docs/assets"
ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png")
# Swagger UI would send the OpenAPI document to its public online validator; never from here.
SWAGGER_PARAMETERS = {"validatorUrl": None}

log = logging.getLogger("cds.api_docs")


def swagger_assets(package: str = "fastapi_offline") -> Path | None:
    """The folder of ``package`` holding Swagger UI's script, stylesheet and icon, or None when
    the package or any of those files is absent."""
    try:
        folder = Path(str(resources.files(package) / "static"))
    except ModuleNotFoundError:
        return None
    return folder if all((folder / name).is_file() for name in ASSETS) else None


def mount_api_docs(app: FastAPI, assets: Path | None) -> None:
    """Serve ``/docs`` and its assets from ``assets``; no route at all (404) when it is None."""
    if assets is None:
        log.warning("api docs off: Swagger UI assets missing", extra=log_fields(path=DOCS_URL))
        return
    app.mount(ASSETS_URL, StaticFiles(directory=assets), name="api-docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"
    title = f"{app.title} - API"

    @app.get(DOCS_URL, include_in_schema=False)
    async def api_docs(request: Request) -> HTMLResponse:
        # Relative to a proxy's prefix, as FastAPI's own page does.
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=title,
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            swagger_ui_parameters=SWAGGER_PARAMETERS,
        )
