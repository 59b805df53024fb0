"""KeycloakOpenID (python-keycloak) against Tessera's OIDC endpoints."""

from __future__ import annotations

import base64
import time

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_der_public_key
from keycloak import KeycloakOpenID
from keycloak.exceptions import (
    KeycloakAuthenticationError,
    KeycloakGetError,
    KeycloakPostError,
)

from conftest import _start_server, _stop_server, create_user, own_database, password_login
from helpers import TOKEN_RESPONSE_FIELDS, aud_list, claims, error_json, header


@pytest.fixture
def oid(server, demo) -> KeycloakOpenID:
    return demo.openid(server)


def test_password_grant_response(server, demo, oid):
    before = int(time.time())
    tok = oid.token(demo.username, demo.password)
    missing = TOKEN_RESPONSE_FIELDS - tok.keys()
    assert not missing, f"token response lacks {missing}: {sorted(tok)}"
    assert tok["token_type"] == "Bearer"
    assert isinstance(tok["expires_in"], int) and tok["expires_in"] > 0
    assert isinstance(tok["refresh_expires_in"], int) and tok["refresh_expires_in"] > 0
    assert tok["not-before-policy"] == 0
    assert isinstance(tok["session_state"], str) and tok["session_state"]
    assert "openid" in tok["scope"].split()
    assert tok["access_token"].count(".") == 2
    assert tok["refresh_token"]

    h = header(tok["access_token"])
    assert h["alg"] == "RS256"
    assert h.get("kid")

    c = claims(tok["access_token"])
    assert c["iss"] == server.issuer(demo.realm)
    assert c["azp"] == demo.client_id
    assert c["sub"] == demo.user_id
    assert c["preferred_username"] == demo.username
    assert c["email"] == demo.email
    assert c.get("typ") == "Bearer"
    assert before - 5 <= c["iat"] <= int(time.time()) + 5
    assert abs((c["exp"] - c["iat"]) - tok["expires_in"]) <= 2
    assert c.get("jti")
    sid = c.get("sid", c.get("session_state"))
    assert sid == tok["session_state"], "access token's sid/session_state != response session_state"


def test_password_grant_id_token(server, demo, oid):
    """scope=openid (python-keycloak's default) yields an ID token for the client."""
    tok = oid.token(demo.username, demo.password)
    assert tok.get("id_token"), "no id_token although scope=openid was requested"
    c = claims(tok["id_token"])
    assert c["iss"] == server.issuer(demo.realm)
    assert demo.client_id in aud_list(c["aud"])
    assert c["sub"] == demo.user_id
    assert c["azp"] == demo.client_id
    assert header(tok["id_token"])["alg"] == "RS256"


def test_refresh_token(server, demo, oid):
    tok = oid.token(demo.username, demo.password)
    time.sleep(1.1)  # so that iat differs
    new = oid.refresh_token(tok["refresh_token"])
    missing = {"access_token", "expires_in", "refresh_token", "token_type", "session_state"} - new.keys()
    assert not missing, f"refresh response lacks {missing}"
    assert new["access_token"] != tok["access_token"]
    assert new["session_state"] == tok["session_state"]
    old_c, new_c = claims(tok["access_token"]), claims(new["access_token"])
    assert new_c["sub"] == demo.user_id
    assert new_c["azp"] == demo.client_id
    assert new_c["iss"] == server.issuer(demo.realm)
    assert new_c["iat"] > old_c["iat"]
    assert oid.userinfo(new["access_token"])["sub"] == demo.user_id


def test_refresh_with_garbage_token_fails(oid):
    with pytest.raises(KeycloakPostError) as e:
        oid.refresh_token("not-a-refresh-token")
    assert e.value.response_code == 400
    assert error_json(e.value)["error"] == "invalid_grant"


def test_userinfo(demo, oid):
    at = oid.token(demo.username, demo.password)["access_token"]
    info = oid.userinfo(at)
    assert isinstance(info, dict)
    assert info["sub"] == demo.user_id
    assert info["preferred_username"] == demo.username
    assert info["email"] == demo.email


def test_userinfo_profile_claims(demo, oid):
    """Keycloak's default profile/email scopes."""
    info = oid.userinfo(oid.token(demo.username, demo.password)["access_token"])
    assert info.get("given_name") == "Alice"
    assert info.get("family_name") == "Liddell"
    assert info.get("name") == "Alice Liddell"
    assert info.get("email_verified") is True


def test_userinfo_rejects_bad_token(oid):
    with pytest.raises(KeycloakAuthenticationError) as e:
        oid.userinfo("garbage.token.value")
    assert e.value.response_code == 401


def test_introspect_then_logout(demo, oid):
    tok = oid.token(demo.username, demo.password)
    at = tok["access_token"]
    intro = oid.introspect(at)
    assert intro["active"] is True
    assert intro["sub"] == demo.user_id
    assert intro.get("username") == demo.username
    assert intro.get("client_id") == demo.client_id
    assert intro["exp"] == claims(at)["exp"]
    assert intro.get("token_type") == "Bearer"

    assert oid.logout(tok["refresh_token"]) == {}  # python-keycloak accepts only 204

    assert oid.introspect(at)["active"] is False
    with pytest.raises(KeycloakPostError) as e:
        oid.refresh_token(tok["refresh_token"])
    assert e.value.response_code == 400
    assert error_json(e.value)["error"] == "invalid_grant"
    with pytest.raises(KeycloakAuthenticationError) as e:
        oid.userinfo(at)
    assert e.value.response_code == 401


def test_introspect_garbage_is_inactive(oid):
    assert oid.introspect("garbage")["active"] is False


def test_wrong_password(demo, oid):
    with pytest.raises(KeycloakAuthenticationError) as e:
        oid.token(demo.username, demo.password + "x")
    assert e.value.response_code == 401
    assert error_json(e.value)["error"] == "invalid_grant"


def test_unknown_user(oid):
    with pytest.raises(KeycloakAuthenticationError) as e:
        oid.token("nobody-here", "whatever")
    assert e.value.response_code == 401
    assert error_json(e.value)["error"] == "invalid_grant"


def _password_grant(srv, demo, username: str, password: str) -> requests.Response:
    return requests.post(f"{srv.issuer(demo.realm)}/protocol/openid-connect/token", timeout=30, data={
        "grant_type": "password", "client_id": demo.client_id, "client_secret": demo.client_secret,
        "username": username, "password": password})


def _locked_out(r: requests.Response) -> bool:
    return r.status_code == 429 and int(r.headers["Retry-After"]) > 0


def test_login_attempts_are_limited_per_username(server, demo):
    """login_max_failures (5) attempts per username and window, then 429 even for the right
    password; a success starts the username afresh; other users are not affected."""
    u = create_user(demo.admin, "thr")
    try:
        for _ in range(4):
            assert _password_grant(server, demo, u.username, "wrong").status_code == 401
        assert _password_grant(server, demo, u.username, u.password).status_code == 200
        for _ in range(5):
            assert _password_grant(server, demo, u.username, "wrong").status_code == 401
        r = _password_grant(server, demo, u.username, u.password)
        assert _locked_out(r), f"{r.status_code} {r.headers} {r.text}"
        assert _password_grant(server, demo, demo.username, demo.password).status_code == 200
    finally:
        demo.admin.delete_user(u.id)


def test_login_limits_are_shared_by_nodes(server, second_node, demo):
    """PostgreSQL only: the count is kept in the database, so failures on one node count on the
    other (N nodes do not multiply the guess rate)."""
    u = create_user(demo.admin, "thr")
    try:
        for node in (server, second_node, server, second_node, server):
            assert _password_grant(node, demo, u.username, "wrong").status_code == 401
        for node in (second_node, server):
            r = _password_grant(node, demo, u.username, u.password)
            assert _locked_out(r), f"{node.base_url}: {r.status_code} {r.text}"
    finally:
        demo.admin.delete_user(u.id)


def test_failed_logins_are_limited_per_address(request, server, tmp_path):
    """Password spraying (one guess for each of many usernames) is stopped by the failures per
    source address (login_address_max_failures, here 3 through TESSERA_*); a success does not
    count against the address."""
    if server.proc is None:
        pytest.skip("starts a server of its own")
    env = {"TESSERA_LOGIN_ADDRESS_MAX_FAILURES": "3"}
    database = own_database(request)
    if database:
        env["TESSERA_DATABASE_URL"] = database
    srv = _start_server(tmp_path, env)
    try:
        token_url = f"{srv.issuer('master')}/protocol/openid-connect/token"

        def login(username: str, password: str) -> requests.Response:
            return requests.post(token_url, timeout=30, data={
                "grant_type": "password", "client_id": "admin-cli",
                "username": username, "password": password})

        for _ in range(3):  # successes give their hit back
            password_login(srv, "admin", srv.admin_password, realm="master", client_id="admin-cli")
        for name in ("alice", "bob", "carol"):
            assert login(name, "Summer2024!").status_code == 401
        r = login("admin", srv.admin_password)
        assert _locked_out(r), f"{r.status_code} {r.text}"
    finally:
        _stop_server(srv)


def test_wrong_client_secret(server, demo):
    bad = demo.openid(server, secret="definitely-wrong")
    with pytest.raises(KeycloakAuthenticationError) as e:
        bad.token(demo.username, demo.password)
    assert e.value.response_code == 401
    assert error_json(e.value)["error"] in ("invalid_client", "unauthorized_client")


def test_unknown_realm(server, demo):
    oid = KeycloakOpenID(server_url=server.base_url + "/", realm_name="no-such-realm",
                         client_id=demo.client_id, client_secret_key=demo.client_secret)
    with pytest.raises(KeycloakPostError) as e:
        oid.token(demo.username, demo.password)
    assert e.value.response_code == 404
    with pytest.raises(KeycloakGetError) as e:
        oid.well_known()
    assert e.value.response_code == 404


def test_public_key(demo, oid):
    pk = oid.public_key()
    assert isinstance(pk, str) and "BEGIN" not in pk
    key = load_der_public_key(base64.b64decode(pk, validate=True))
    assert isinstance(key, RSAPublicKey)
    assert key.key_size >= 2048

    # the same key is published in the JWKS and verifies the realm's tokens
    at = oid.token(demo.username, demo.password)["access_token"]
    kid = header(at)["kid"]
    jwk = next(k for k in oid.certs()["keys"] if k.get("kid") == kid)
    n = int.from_bytes(base64.urlsafe_b64decode(jwk["n"] + "=" * (-len(jwk["n"]) % 4)), "big")
    e = int.from_bytes(base64.urlsafe_b64decode(jwk["e"] + "=" * (-len(jwk["e"]) % 4)), "big")
    assert (key.public_numbers().n, key.public_numbers().e) == (n, e)
    c = jwt.decode(at, key, algorithms=["RS256"], audience=claims(at).get("aud"))
    assert c["sub"] == demo.user_id


def test_well_known(server, demo, oid):
    wk = oid.well_known()
    iss = server.issuer(demo.realm)
    oidc = f"{iss}/protocol/openid-connect"
    assert wk["issuer"] == iss
    assert wk["token_endpoint"] == f"{oidc}/token"
    assert wk["jwks_uri"] == f"{oidc}/certs"
    assert wk["userinfo_endpoint"] == f"{oidc}/userinfo"
    assert wk["introspection_endpoint"] == f"{oidc}/token/introspect"
    assert wk["end_session_endpoint"] == f"{oidc}/logout"
    assert wk.get("revocation_endpoint") == f"{oidc}/revoke"
    assert {"password", "refresh_token", "client_credentials"} <= set(wk["grant_types_supported"])
    assert "RS256" in wk["id_token_signing_alg_values_supported"]
    assert "client_secret_post" in wk["token_endpoint_auth_methods_supported"]


def test_certs(demo, oid):
    at = oid.token(demo.username, demo.password)["access_token"]
    keys = oid.certs()["keys"]
    assert isinstance(keys, list) and keys
    rsa = [k for k in keys if k.get("kty") == "RSA" and k.get("use", "sig") == "sig"]
    assert rsa, keys
    for k in rsa:
        assert k.get("kid") and k.get("n") and k.get("e")
        assert "d" not in k and "p" not in k, "private key material in JWKS!"
    assert header(at)["kid"] in [k["kid"] for k in rsa]
    assert any(k.get("alg") == "RS256" for k in rsa)


def test_client_credentials(server, demo, oid):
    tok = oid.token(grant_type="client_credentials")
    assert tok["access_token"]
    assert tok["token_type"] == "Bearer"
    assert isinstance(tok["expires_in"], int) and tok["expires_in"] > 0
    c = claims(tok["access_token"])
    assert c["azp"] == demo.client_id
    assert c["iss"] == server.issuer(demo.realm)
    assert c["sub"] and c["sub"] != demo.user_id
    intro = oid.introspect(tok["access_token"])
    assert intro["active"] is True
    assert intro.get("client_id") == demo.client_id


def test_client_credentials_service_account_user(demo, oid):
    """Keycloak: the token's subject is the client's service-account-<clientId> user."""
    sa = demo.admin.get_client_service_account_user(demo.client_uuid)
    assert sa["username"] == f"service-account-{demo.client_id}"
    c = claims(oid.token(grant_type="client_credentials")["access_token"])
    assert c["sub"] == sa["id"]
    assert c.get("preferred_username") == f"service-account-{demo.client_id}"


def test_client_credentials_wrong_secret(server, demo):
    with pytest.raises(KeycloakAuthenticationError) as e:
        demo.openid(server, secret="nope").token(grant_type="client_credentials")
    assert e.value.response_code == 401
