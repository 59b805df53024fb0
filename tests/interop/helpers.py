"""Small helpers shared by the interop tests."""

from __future__ import annotations

import json

import jwt
from keycloak.exceptions import KeycloakError

TOKEN_RESPONSE_FIELDS = {
    "access_token",
    "expires_in",
    "refresh_expires_in",
    "refresh_token",
    "token_type",
    "not-before-policy",
    "session_state",
    "scope",
}


def claims(token: str) -> dict:
    """Unverified JWT payload."""
    return jwt.decode(token, options={"verify_signature": False})


def header(token: str) -> dict:
    return jwt.get_unverified_header(token)


def error_json(exc: KeycloakError) -> dict:
    """Parse the JSON error body carried by a python-keycloak exception."""
    body = exc.response_body or b""
    try:
        return json.loads(body)
    except ValueError:
        raise AssertionError(f"error body is not JSON: {body!r}") from None


def aud_list(aud) -> list:
    if aud is None:
        return []
    return [aud] if isinstance(aud, str) else list(aud)
