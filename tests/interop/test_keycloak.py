"""KeycloakAdmin (python-keycloak) against Tessera's Keycloak Admin REST API."""

from __future__ import annotations

import os
import subprocess

import pytest
import requests
from keycloak import KeycloakOpenID
from keycloak.exceptions import (
    KeycloakAuthenticationError,
    KeycloakGetError,
    KeycloakPostError,
)

from conftest import DEFAULT_CLIENT, DEFAULT_REALM, DEMO_REALM, REPO, _free_port, create_user, make_admin
from helpers import claims, error_json


def _realm_names(admin) -> list[str]:
    realms = admin.get_realms()
    assert isinstance(realms, list)
    return [r["realm"] for r in realms]


# ------------------------------------------------------------------ realms


def test_master_realm_bootstrapped(admin):
    assert "master" in _realm_names(admin)
    master = admin.get_realm("master")
    assert master["realm"] == "master"
    assert master["enabled"] is True
    assert master.get("id")
    admin_cli = admin.get_client_id("admin-cli")
    assert admin_cli is not None
    rep = admin.get_client(admin_cli)
    assert rep["clientId"] == "admin-cli"
    assert rep["publicClient"] is True
    assert admin.get_user_id("admin") is not None


def test_default_realm_bootstrapped(server, realm_admin):
    """The first start also made the default realm with its public client for developer tools
    (password and device grants, loopback redirects on any port; provider sign-up off), and Che's
    settings name both: the dashboard signs in there with python-keycloak."""
    rep = realm_admin.get_client(realm_admin.get_client_id(DEFAULT_CLIENT))
    assert rep["publicClient"] is True and rep["enabled"] is True, rep
    assert rep["directAccessGrantsEnabled"] is True and rep["standardFlowEnabled"] is True, rep
    assert rep["redirectUris"] == ["http://127.0.0.1/callback"], rep
    attributes = rep.get("attributes") or {}
    assert attributes.get("oauth2.device.authorization.grant.enabled") == "true", rep
    assert attributes.get("tessera.signup.enabled") != "true", "provider sign-up is off by default"

    settings = requests.get(f"{server.base_url}/api/keycloak/settings", timeout=10).json()
    assert settings["che.keycloak.realm"] == DEFAULT_REALM, settings
    assert settings["che.keycloak.client_id"] == DEFAULT_CLIENT, settings
    oid = KeycloakOpenID(server_url=settings["che.keycloak.auth_server_url"] + "/",
                         realm_name=settings["che.keycloak.realm"],
                         client_id=settings["che.keycloak.client_id"], timeout=10)
    u = create_user(realm_admin, "che")
    try:
        at = claims(oid.token(u.username, u.password)["access_token"])
        assert at["azp"] == DEFAULT_CLIENT and at["sub"] == u.id, at
    finally:
        realm_admin.delete_user(u.id)
    r = requests.post(oid.well_known()["device_authorization_endpoint"],
                      data={"client_id": DEFAULT_CLIENT}, timeout=10)
    assert r.status_code == 200 and r.json()["user_code"], r.text

    # A loopback redirect on any port (RFC 8252) reaches the login page; another path does not.
    auth = f"{server.issuer(DEFAULT_REALM)}/protocol/openid-connect/auth"
    params = {"client_id": DEFAULT_CLIENT, "response_type": "code", "scope": "openid",
              "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
              "code_challenge_method": "S256"}
    port = _free_port()
    r = requests.get(auth, params={**params, "redirect_uri": f"http://127.0.0.1:{port}/callback"},
                     allow_redirects=False, timeout=10)
    assert r.status_code == 200 and 'id="kc-login"' in r.text, r.text[:300]
    r = requests.get(auth, params={**params, "redirect_uri": f"http://127.0.0.1:{port}/elsewhere"},
                     allow_redirects=False, timeout=10)
    assert r.status_code == 400 and "Location" not in r.headers, r.text[:300]


def test_the_admin_realm_cannot_be_the_default_realm(server, tmp_path):
    """Self-service flows act in the default realm, so `master` is refused there at start."""
    if server.proc is None:
        pytest.skip("starts a server of its own")
    binary = os.environ.get("TESSERA_BIN", str(REPO / "target" / "debug" / "tessera"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}
    env["TESSERA_DEFAULT_REALM"] = "master"
    proc = subprocess.Popen([binary, "serve", "--data-dir", str(tmp_path), "--listen",
                             f"127.0.0.1:{_free_port()}"], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("tessera started with default_realm = master")
    assert proc.returncode != 0 and "default_realm" in out, out


def test_demo_realm_created_and_listed(admin, demo):
    assert DEMO_REALM in _realm_names(admin)
    rep = admin.get_realm(DEMO_REALM)
    assert rep["realm"] == DEMO_REALM
    assert rep["enabled"] is True


def test_realm_lifecycle(admin, unique):
    name = f"life-{unique}"
    assert name not in _realm_names(admin)
    created = admin.create_realm(payload={"realm": name, "enabled": True})
    assert isinstance(created, bytes)  # python-keycloak requires a non-JSON (empty) 201 body
    assert name in _realm_names(admin)
    rep = admin.get_realm(name)
    assert rep["realm"] == name
    assert rep["enabled"] is True

    assert admin.delete_realm(name) == {}
    with pytest.raises(KeycloakGetError) as e:
        admin.get_realm(name)
    assert e.value.response_code == 404
    assert name not in _realm_names(admin)


def test_create_existing_realm_conflicts(admin, demo):
    with pytest.raises(KeycloakPostError) as e:
        admin.create_realm(payload={"realm": DEMO_REALM, "enabled": True})
    assert e.value.response_code == 409


# ----------------------------------------------------------------- clients


def test_confidential_client_lifecycle(server, demo, unique):
    ra = demo.admin
    client_id = f"app-{unique}"
    secret = f"secret-{unique}-given"
    uuid_ = ra.create_client(
        payload={
            "clientId": client_id,
            "secret": secret,
            "enabled": True,
            "publicClient": False,
            "directAccessGrantsEnabled": True,
            "serviceAccountsEnabled": True,
            "redirectUris": ["https://app.example.com/cb", "http://localhost:3000/*"],
        }
    )
    assert uuid_ and "/" not in uuid_  # taken from the Location header

    assert ra.get_client_id(client_id) == uuid_
    rep = ra.get_client(uuid_)
    assert rep["id"] == uuid_
    assert rep["clientId"] == client_id
    assert rep["publicClient"] is False
    assert rep["directAccessGrantsEnabled"] is True
    assert rep["serviceAccountsEnabled"] is True
    assert sorted(rep["redirectUris"]) == sorted(["https://app.example.com/cb", "http://localhost:3000/*"])
    assert client_id in [c["clientId"] for c in ra.get_clients()]

    sec = ra.get_client_secrets(uuid_)
    assert sec.get("type") == "secret"
    assert sec.get("value") in (None, secret)  # see test_get_client_secrets_returns_supplied_secret

    # the client works for the password grant with that secret
    oid = KeycloakOpenID(server_url=server.base_url + "/", realm_name=demo.realm,
                         client_id=client_id, client_secret_key=secret)
    tok = oid.token(demo.username, demo.password)
    assert claims(tok["access_token"])["azp"] == client_id

    assert ra.delete_client(uuid_) == {}
    assert ra.get_client_id(client_id) is None
    with pytest.raises(KeycloakGetError) as e:
        ra.get_client(uuid_)
    assert e.value.response_code == 404
    with pytest.raises(KeycloakAuthenticationError) as e:
        oid.token(demo.username, demo.password)
    assert e.value.response_code == 401


def test_supplied_client_secret_is_stored_only_as_a_hash(server, demo, unique):
    """Tessera deviates from Keycloak on purpose: an administrator-supplied
    secret is kept only as a hash, so GET .../client-secret cannot show it
    (generated secrets can be shown; see test_generated_client_secret). The
    supplied secret still authenticates the client."""
    ra = demo.admin
    client_id = f"sup-{unique}"
    uuid_ = ra.create_client(payload={"clientId": client_id, "publicClient": False,
                                      "secret": f"supplied-secret-{unique}", "serviceAccountsEnabled": True})
    try:
        assert ra.get_client_secrets(uuid_) == {"type": "secret"}
        oid = KeycloakOpenID(server_url=server.base_url + "/", realm_name=demo.realm,
                             client_id=client_id, client_secret_key=f"supplied-secret-{unique}")
        assert oid.token(grant_type="client_credentials")["access_token"].count(".") == 2
    finally:
        ra.delete_client(uuid_)


def test_get_client_id_unknown_is_none(demo):
    assert demo.admin.get_client_id("no-such-client") is None


def test_generated_client_secret(server, demo, unique):
    ra = demo.admin
    client_id = f"gen-{unique}"
    uuid_ = ra.create_client(
        payload={
            "clientId": client_id,
            "publicClient": False,
            "serviceAccountsEnabled": True,
            "directAccessGrantsEnabled": True,
            "redirectUris": [],
        }
    )
    try:
        generated = ra.get_client_secrets(uuid_)["value"]
        assert isinstance(generated, str) and len(generated) >= 16
        oid = KeycloakOpenID(server_url=server.base_url + "/", realm_name=demo.realm,
                             client_id=client_id, client_secret_key=generated)
        tok = oid.token(grant_type="client_credentials")
        assert claims(tok["access_token"])["azp"] == client_id
    finally:
        ra.delete_client(uuid_)


def test_regenerate_client_secret(server, demo, unique):
    ra = demo.admin
    client_id = f"regen-{unique}"
    uuid_ = ra.create_client(
        payload={"clientId": client_id, "publicClient": False, "secret": "first-secret-value",
                 "serviceAccountsEnabled": True}
    )
    try:
        new = ra.generate_client_secrets(uuid_)
        assert new.get("type") == "secret"
        assert new["value"] and new["value"] != "first-secret-value"
        assert ra.get_client_secrets(uuid_)["value"] == new["value"]

        def cc(secret):
            return KeycloakOpenID(server_url=server.base_url + "/", realm_name=demo.realm,
                                  client_id=client_id, client_secret_key=secret
                                  ).token(grant_type="client_credentials")

        assert cc(new["value"])["access_token"]
        with pytest.raises(KeycloakAuthenticationError):
            cc("first-secret-value")
    finally:
        ra.delete_client(uuid_)


# ------------------------------------------------------------------- users


def test_user_lifecycle(server, demo, unique):
    ra = demo.admin
    username = f"user-{unique}"
    pw1, pw2 = f"Pw1-{unique}", f"Pw2-{unique}"
    uid = ra.create_user(
        payload={
            "username": username,
            "email": f"{username}@example.com",
            "firstName": "Bob",
            "lastName": "Builder",
            "enabled": True,
            "credentials": [{"type": "password", "value": pw1, "temporary": False}],
        }
    )
    assert uid and "/" not in uid  # from the Location header

    assert ra.get_user_id(username) == uid
    rep = ra.get_user(uid)
    assert rep["id"] == uid
    assert rep["username"] == username
    assert rep["email"] == f"{username}@example.com"
    assert rep["firstName"] == "Bob"
    assert rep["lastName"] == "Builder"
    assert rep["enabled"] is True
    assert "credentials" not in rep or not any(c.get("value") for c in rep["credentials"])

    oid = demo.openid(server)
    tok1 = oid.token(username, pw1)
    assert claims(tok1["access_token"])["sub"] == uid

    # reset-password
    assert ra.set_user_password(uid, pw2, temporary=False) == {}
    with pytest.raises(KeycloakAuthenticationError) as e:
        oid.token(username, pw1)
    assert e.value.response_code == 401
    tok2 = oid.token(username, pw2)
    assert claims(tok2["access_token"])["sub"] == uid

    # partial update keeps the other fields
    new_email = f"{username}.new@example.com"
    assert ra.update_user(uid, {"firstName": "Robert", "email": new_email}) == {}
    rep = ra.get_user(uid)
    assert rep["firstName"] == "Robert"
    assert rep["email"] == new_email
    assert rep["username"] == username
    assert rep["lastName"] == "Builder"
    assert rep["enabled"] is True
    assert oid.userinfo(oid.token(username, pw2)["access_token"])["email"] == new_email

    # list with query
    assert uid in [u["id"] for u in ra.get_users({"username": username})]
    assert uid in [u["id"] for u in ra.get_users({"search": unique})]
    assert uid in [u["id"] for u in ra.get_users({"email": new_email})]
    assert [u["id"] for u in ra.get_users({"username": username, "exact": True})] == [uid]
    assert ra.get_users({"search": "nobody-matches-this-" + unique}) == []

    # sessions
    sessions = ra.get_sessions(uid)
    assert isinstance(sessions, list) and len(sessions) >= 1
    assert tok2["session_state"] in [s["id"] for s in sessions]
    for s in sessions:
        assert s["userId"] == uid
        assert s["username"] == username
        assert demo.client_id in s.get("clients", {}).values()

    # admin logout kills every session
    assert ra.user_logout(uid) == {}
    assert ra.get_sessions(uid) == []
    with pytest.raises(KeycloakPostError) as e:
        oid.refresh_token(tok2["refresh_token"])
    assert e.value.response_code == 400
    assert error_json(e.value)["error"] == "invalid_grant"
    assert oid.introspect(tok2["access_token"])["active"] is False

    # delete
    assert ra.delete_user(uid) == {}
    assert ra.get_user_id(username) is None
    with pytest.raises(KeycloakGetError) as e:
        ra.get_user(uid)
    assert e.value.response_code == 404
    with pytest.raises(KeycloakAuthenticationError) as e:
        oid.token(username, pw2)
    assert error_json(e.value)["error"] == "invalid_grant"


def test_create_user_duplicate_conflicts(demo):
    with pytest.raises(KeycloakPostError) as e:
        demo.admin.create_user(payload={"username": demo.username, "enabled": True})
    assert e.value.response_code == 409


def test_get_user_id_honours_exact(demo, unique):
    """get_user_id sends ?username=<u>&max=1&exact=True: a substring match must not win."""
    ra = demo.admin
    # created first and sorting first, so a server ignoring `exact` returns this one
    decoy = ra.create_user(payload={"username": f"a-exact{unique}", "enabled": True})
    target = ra.create_user(payload={"username": f"exact{unique}", "enabled": True})
    try:
        assert ra.get_user_id(f"exact{unique}") == target
        assert ra.get_user_id(f"a-exact{unique}") == decoy
        assert ra.get_user_id(f"xact{unique}") is None
    finally:
        ra.delete_user(decoy)
        ra.delete_user(target)


def test_username_is_lowercased(demo, unique):
    """Keycloak stores usernames in lower case; get_user_id lowercases its query."""
    ra = demo.admin
    uid = ra.create_user(payload={"username": f"MiXeD{unique}", "enabled": True})
    try:
        assert ra.get_user(uid)["username"] == f"mixed{unique}"
        assert ra.get_user_id(f"MiXeD{unique}") == uid
    finally:
        ra.delete_user(uid)


def test_get_users_pagination(demo, unique):
    ra = demo.admin
    ids = [ra.create_user(payload={"username": f"pg{unique}-{i}", "enabled": True}) for i in range(3)]
    try:
        everything = ra.get_users({"search": f"pg{unique}"})  # paged by python-keycloak (first/max)
        assert sorted(u["id"] for u in everything) == sorted(ids)
        first = ra.get_users({"search": f"pg{unique}", "first": 0, "max": 1})
        rest = ra.get_users({"search": f"pg{unique}", "first": 1, "max": 2})
        assert len(first) == 1 and len(rest) == 2
        assert sorted([first[0]["id"]] + [u["id"] for u in rest]) == sorted(ids)
        assert ra.get_users({"search": f"pg{unique}", "first": 3, "max": 10}) == []
    finally:
        for i in ids:
            ra.delete_user(i)


def test_admin_api_requires_token(server, demo):
    r = requests.get(f"{server.base_url}/admin/realms", timeout=10)
    assert r.status_code == 401
    r = requests.get(f"{server.base_url}/admin/realms", timeout=10,
                     headers={"Authorization": "Bearer not-a-jwt"})
    assert r.status_code == 401


def test_admin_api_forbids_plain_user(server, admin, demo, unique):
    """A master user without the admin role gets 403; a demo-realm user is refused too."""
    username, pw = f"plain-{unique}", f"Pw-{unique}"
    uid = admin.create_user(payload={"username": username, "enabled": True,
                                     "credentials": [{"type": "password", "value": pw, "temporary": False}]})
    try:
        master_cli = KeycloakOpenID(server_url=server.base_url + "/", realm_name="master", client_id="admin-cli")
        at = master_cli.token(username, pw)["access_token"]
        r = requests.get(f"{server.base_url}/admin/realms/{demo.realm}/users", timeout=10,
                         headers={"Authorization": f"Bearer {at}"})
        assert r.status_code == 403, r.text
    finally:
        admin.delete_user(uid)
    at = demo.openid(server).token(demo.username, demo.password)["access_token"]
    r = requests.get(f"{server.base_url}/admin/realms/{demo.realm}/users", timeout=10,
                     headers={"Authorization": f"Bearer {at}"})
    assert r.status_code in (401, 403), r.text


def test_admin_for_other_realm_via_change_current_realm(server, demo):
    """The other common pattern: log in on master, then switch the target realm."""
    adm = make_admin(server)
    assert "master" in _realm_names(adm)  # token obtained from master here
    adm.change_current_realm(demo.realm)
    assert adm.get_user_id(demo.username) == demo.user_id
    assert adm.get_client_id(demo.client_id) == demo.client_uuid
