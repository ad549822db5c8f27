"""The HTTP floor of this stack: a FastAPI app that does only what no CDS service can skip.

``bench.http --floor`` loads it under uvicorn (uvloop, httptools, one worker) in place of
``cds serve``, and measures it with the same client, tokens and bodies. Per request it verifies
the EHR's JWT (signature, iss, aud, exp, a jti seen once), reads the body and parses it with
orjson with the collector paused, and answers ``{"cards": []}``: no prefetch, rules, cards,
audit, logs or metrics. Whatever this app cannot reach on a machine, the service cannot either.
"""

from __future__ import annotations

import base64
import gc
import json
import os
from pathlib import Path
from typing import Any, Final

import jwt
import orjson
from fastapi import FastAPI, Request
from starlette.responses import Response

EMPTY_ANSWER: Final = b'{"cards":[]}'


def _keys(jwks_file: Path) -> dict[str, tuple[Any, str]]:
    """Public key and algorithm by kid, from the JWKS file the benchmark wrote."""
    keys: dict[str, tuple[Any, str]] = {}
    for jwk in json.loads(jwks_file.read_text())["keys"]:
        keys[jwk["kid"]] = (jwt.PyJWK(jwk).key, jwk["alg"])
    return keys


def _kid(token: str) -> Any:
    """The header's ``kid``, read without PyJWT's whole-token parse: ``jwt.decode`` parses and
    checks the token once, as the least service would (``get_unverified_header`` first parsed
    it a second time, ~27 us a call that flattered every ratio against the floor)."""
    header = token.partition(".")[0]
    return orjson.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"]


def create_app() -> FastAPI:
    """The floor app, configured from BENCH_FLOOR_JWKS, BENCH_FLOOR_ISSUER, BENCH_FLOOR_AUDIENCE."""
    keys = _keys(Path(os.environ["BENCH_FLOOR_JWKS"]))
    issuer = os.environ["BENCH_FLOOR_ISSUER"]
    audience = os.environ["BENCH_FLOOR_AUDIENCE"]
    seen: set[str] = set()
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.post("/cds-services/{service_id}")
    async def call(service_id: str, request: Request) -> Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        try:
            key, alg = keys[_kid(token)]
            claims = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=audience,
                issuer=issuer,
                options={"require": ["iss", "aud", "exp", "jti"]},
            )
        except (jwt.PyJWTError, KeyError, ValueError, TypeError):
            return Response(status_code=401)
        if scheme.lower() != "bearer" or claims["jti"] in seen:
            return Response(status_code=401)
        seen.add(claims["jti"])
        body = await request.body()
        gc.disable()
        try:
            orjson.loads(body)
        finally:
            gc.enable()
        return Response(EMPTY_ANSWER, media_type="application/json")

    @app.get("/readyz")
    async def readyz() -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    # As the service does after start-up: long-lived objects leave the collector's generations.
    gc.freeze()
    return app
