"""What the HTTP layer answers with: JSON bodies (orjson) and errors as OperationOutcomes."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from cds.errors import CdsError, operation_outcome

JSON_MEDIA_TYPE = "application/json"


class JsonResponse(Response):
    """A JSON response serialized by orjson (fast, and never emits NaN)."""

    media_type = JSON_MEDIA_TYPE

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class EncodedJsonResponse(Response):
    """A JSON body its flow already encoded (with orjson, as ``JsonResponse`` would): sent as
    it is, not decoded and encoded again."""

    media_type = JSON_MEDIA_TYPE


def error_response(error: CdsError) -> JsonResponse:
    return JsonResponse(
        operation_outcome(error), status_code=error.status_code, headers=error.headers or None
    )
