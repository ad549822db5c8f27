"""A token used once is refused after the service restarts, with the replay cache in memory."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import httpx

from tests.jwt_minting import ISSUER, make_issuer
from tests.served import Server

LEEWAY_SECONDS = 1  # the default is 30; a short one keeps the test from waiting that long


def test_a_token_replayed_after_a_restart_is_refused(tmp_path: Path) -> None:
    issuer = make_issuer(tmp_path)
    env = {
        "CDS_ENV": "test",
        "CDS_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cds.db'}",
        "CDS_AUTH_MODE": "required",
        "CDS_TRUSTED_ISSUERS": json.dumps({ISSUER: str(issuer.jwks_file)}),
        "CDS_JWT_LEEWAY_SECONDS": str(LEEWAY_SECONDS),
        # The default: SQLite and one worker keep the replay cache in memory.
        "CDS_REPLAY_CACHE": "auto",
    }
    service = Server(env=env, log=tmp_path / "cds.log")
    discovery = f"{service.url}/cds-services"

    service.start()
    try:
        token = issuer.header(discovery)
        issued_at = time.time()
        assert httpx.get(discovery, headers=token).status_code == 200
        assert httpx.get(discovery, headers=token).status_code == 401
    finally:
        service.kill(signal.SIGTERM)
    # The token is still well within its lifetime; only the process is new.
    while time.time() < issued_at + LEEWAY_SECONDS + 1:
        time.sleep(0.1)
    service.start()  # the same port: the token's aud still names it
    try:
        replayed = httpx.get(discovery, headers=token)
        fresh = httpx.get(discovery, headers=issuer.header(discovery))
    finally:
        service.kill(signal.SIGTERM)
    assert replayed.status_code == 401
    assert replayed.headers["www-authenticate"] == "Bearer"
    assert fresh.status_code == 200
