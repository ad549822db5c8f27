"""A token used once is refused after the service restarts, with the replay cache in memory."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

from tests.jwt_minting import ISSUER, make_issuer
from tests.service_process import free_port, start_service

LEEWAY_SECONDS = 1  # the default is 30; a short one keeps the test from waiting that long


def test_a_token_replayed_after_a_restart_is_refused(tmp_path: Path) -> None:
    issuer = make_issuer(tmp_path)
    port = free_port()
    env = {
        "CDS_AUTH_MODE": "required",
        "CDS_TRUSTED_ISSUERS": json.dumps({ISSUER: str(issuer.jwks_file)}),
        "CDS_JWT_LEEWAY_SECONDS": str(LEEWAY_SECONDS),
        # The default: SQLite and one worker keep the replay cache in memory.
        "CDS_REPLAY_CACHE": "auto",
    }
    discovery = f"http://127.0.0.1:{port}/cds-services"

    service = start_service(env, tmp_path, port)
    try:
        token = issuer.header(discovery)
        issued_at = time.time()
        assert httpx.get(discovery, headers=token).status_code == 200
        assert httpx.get(discovery, headers=token).status_code == 401
    finally:
        service.stop()
    # The token is still well within its lifetime; only the process is new.
    while time.time() < issued_at + LEEWAY_SECONDS + 1:
        time.sleep(0.1)
    service = start_service(env, tmp_path, port)
    try:
        replayed = httpx.get(discovery, headers=token)
        fresh = httpx.get(discovery, headers=issuer.header(discovery))
    finally:
        service.stop()
    assert replayed.status_code == 401
    assert replayed.headers["www-authenticate"] == "Bearer"
    assert fresh.status_code == 200
