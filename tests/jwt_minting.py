"""Minting real EHR-style JWTs in tests: a generated EC P-384 key and its JWKS file."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

ISSUER = "https://ehr.example.org"
KID = "test-key-1"


@dataclass(frozen=True)
class Issuer:
    """A trusted EHR for tests: its private key and the JWKS file the service trusts."""

    key: ec.EllipticCurvePrivateKey
    jwks_file: Path

    def token(self, audience: str, **claims: Any) -> str:
        now = datetime.now(UTC)
        payload: dict[str, Any] = {
            "iss": ISSUER,
            "aud": audience,
            "iat": int(now.timestamp()),
            "exp": int((now + timedelta(minutes=5)).timestamp()),
            "jti": str(uuid.uuid4()),
        }
        payload.update(claims)
        return jwt.encode(payload, self.key, algorithm="ES384", headers={"kid": KID, "typ": "JWT"})

    def header(self, audience: str, **claims: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(audience, **claims)}"}


def make_issuer(directory: Path) -> Issuer:
    key = ec.generate_private_key(ec.SECP384R1())
    jwk = json.loads(ECAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": KID, "alg": "ES384", "use": "sig"})
    path = directory / "ehr-jwks.json"
    path.write_text(json.dumps({"keys": [jwk]}))
    return Issuer(key=key, jwks_file=path)
