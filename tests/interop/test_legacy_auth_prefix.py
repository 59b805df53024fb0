"""The same flows under Keycloak's legacy `/auth` prefix (server_url = base + "/auth/")."""

from __future__ import annotations

from keycloak.exceptions import KeycloakAuthenticationError

import pytest

from conftest import make_admin
from helpers import TOKEN_RESPONSE_FIELDS, claims

PREFIX = "/auth"


def test_password_grant_under_auth_prefix(server, demo):
    oid = demo.openid(server, prefix=PREFIX)
    tok = oid.token(demo.username, demo.password)
    missing = TOKEN_RESPONSE_FIELDS - tok.keys()
    assert not missing, f"token response lacks {missing}"
    assert tok["token_type"] == "Bearer"
    c = claims(tok["access_token"])
    assert c["azp"] == demo.client_id
    assert c["sub"] == demo.user_id
    assert c["iss"] in (server.issuer(demo.realm), f"{server.base_url}{PREFIX}/realms/{demo.realm}")

    # discovery under the prefix must announce the issuer its tokens carry
    wk = oid.well_known()
    assert wk["issuer"] == c["iss"]

    assert oid.userinfo(tok["access_token"])["sub"] == demo.user_id
    assert oid.introspect(tok["access_token"])["active"] is True
    new = oid.refresh_token(tok["refresh_token"])
    assert claims(new["access_token"])["sub"] == demo.user_id
    assert oid.certs()["keys"]
    assert oid.public_key()

    with pytest.raises(KeycloakAuthenticationError) as e:
        oid.token(demo.username, "wrong-" + demo.password)
    assert e.value.response_code == 401

    assert oid.logout(new["refresh_token"]) == {}
    assert oid.introspect(new["access_token"])["active"] is False


def test_admin_under_auth_prefix(server, demo):
    adm = make_admin(server, prefix=PREFIX)
    assert demo.realm in [r["realm"] for r in adm.get_realms()]
    adm_demo = make_admin(server, demo.realm, prefix=PREFIX)
    assert adm_demo.get_user_id(demo.username) == demo.user_id
    assert adm_demo.get_client_id(demo.client_id) == demo.client_uuid
