"""PyJWT + PyJWKClient verifying Tessera's RS256 access tokens through the realm JWKS."""

from __future__ import annotations

import base64
import json
import time
from datetime import timedelta

import jwt
import pytest
from jwt import PyJWKClient

from conftest import make_admin
from helpers import claims, header


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_decode(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


@pytest.fixture
def jwks(server, demo) -> PyJWKClient:
    return PyJWKClient(f"{server.base_url}/realms/{demo.realm}/protocol/openid-connect/certs")


@pytest.fixture
def user_token(server, demo) -> dict:
    return demo.openid(server).token(demo.username, demo.password)


def _decode(jwks, token, server, demo, **kw):
    key = jwks.get_signing_key_from_jwt(token)
    kw.setdefault("audience", claims(token).get("aud"))
    kw.setdefault("issuer", server.issuer(demo.realm))
    options = {"require": ["exp", "iat", "iss", "sub"], **kw.pop("options", {})}
    return jwt.decode(token, key.key, algorithms=["RS256"], options=options, **kw)


def test_decode_access_token(server, demo, jwks, user_token):
    at = user_token["access_token"]
    key = jwks.get_signing_key_from_jwt(at)
    assert key.key_id == header(at)["kid"]
    assert key.algorithm_name == "RS256"

    c = _decode(jwks, at, server, demo)
    now = time.time()
    assert c["iss"] == server.issuer(demo.realm)
    assert c["azp"] == demo.client_id
    assert c["sub"] == demo.user_id
    assert now < c["exp"] <= now + user_token["expires_in"] + 5


def test_decode_client_credentials_token(server, demo, jwks):
    at = demo.openid(server).token(grant_type="client_credentials")["access_token"]
    c = _decode(jwks, at, server, demo)
    assert c["azp"] == demo.client_id


def test_exp_is_enforced(server, demo, jwks, user_token):
    """Shifting the clock past `expires_in` makes the token expire: exp is real."""
    at = user_token["access_token"]
    skew = timedelta(seconds=user_token["expires_in"] + 10)
    with pytest.raises(jwt.ExpiredSignatureError):
        _decode(jwks, at, server, demo, leeway=-skew,
                options={"verify_iat": False, "verify_nbf": False})


def test_tampered_payload_rejected(server, demo, jwks, user_token):
    at = user_token["access_token"]
    h, p, s = at.split(".")
    payload = json.loads(_b64url_decode(p))
    payload["preferred_username"] = "mallory"
    forged = ".".join([h, _b64url(json.dumps(payload).encode()), s])
    assert claims(forged)["preferred_username"] == "mallory"
    with pytest.raises(jwt.InvalidSignatureError):
        _decode(jwks, forged, server, demo)


def test_tampered_signature_rejected(server, demo, jwks, user_token):
    h, p, s = user_token["access_token"].split(".")
    sig = bytearray(_b64url_decode(s))
    sig[len(sig) // 2] ^= 0x01
    with pytest.raises(jwt.InvalidSignatureError):
        _decode(jwks, ".".join([h, p, _b64url(bytes(sig))]), server, demo)


def test_wrong_audience_and_issuer_rejected(server, demo, jwks, user_token):
    at = user_token["access_token"]
    with pytest.raises(jwt.InvalidAudienceError):
        _decode(jwks, at, server, demo, audience="some-other-api")
    with pytest.raises(jwt.InvalidIssuerError):
        _decode(jwks, at, server, demo, issuer=f"{server.base_url}/realms/other")


def test_other_realm_key_not_accepted(server, demo, jwks):
    """A master-realm token is not signed by a key in the demo realm's JWKS (per-realm keys)."""
    master_at = make_admin(server).connection.keycloak_openid.token("admin", server.admin_password)["access_token"]
    assert claims(master_at)["iss"] == server.issuer("master")
    with pytest.raises(jwt.PyJWKClientError):
        jwks.get_signing_key_from_jwt(master_at)
    # and no demo key verifies it, whatever its kid
    for k in jwks.get_signing_keys():
        with pytest.raises(jwt.InvalidSignatureError):
            jwt.decode(master_at, k.key, algorithms=["RS256"], options={"verify_aud": False})
