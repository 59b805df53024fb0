"""Che machine tokens checked by PyJWT the way a workspace agent would: with
only the public key from CHE_MACHINE_AUTH_SIGNATURE__PUBLIC__KEY (base64
X.509 SubjectPublicKeyInfo DER), RS512, and the `kind` header."""

from __future__ import annotations

import base64
import json

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.serialization import load_der_public_key

from conftest import create_user, password_login


@pytest.fixture(scope="module")
def owner(realm_admin):
    """The workspaces' owner: a user of the default realm (where /api/workspace acts)."""
    u = create_user(realm_admin, "mt")
    yield u
    realm_admin.delete_user(u.id)


@pytest.fixture(scope="module")
def running_workspaces(server, owner, unique_module):
    """Two running workspaces of `owner`, and the owner's access token."""
    token = password_login(server, owner.username, owner.password)["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    ids = []
    for name in (f"mt-a-{unique_module}", f"mt-b-{unique_module}"):
        r = requests.post(f"{server.base_url}/api/workspace", json={"name": name}, headers=auth, timeout=10)
        assert r.status_code == 201, r.text
        ws_id = r.json()["id"]
        r = requests.post(f"{server.base_url}/api/workspace/{ws_id}/runtime", headers=auth, timeout=10)
        assert r.status_code == 200, r.text
        ids.append(ws_id)
    yield token, ids
    for ws_id in ids:
        requests.delete(f"{server.base_url}/api/workspace/{ws_id}/runtime", headers=auth, timeout=10)
        requests.delete(f"{server.base_url}/api/workspace/{ws_id}", headers=auth, timeout=10)


@pytest.fixture(scope="module")
def unique_module() -> str:
    import uuid

    return uuid.uuid4().hex[:8]


def agent_env(server, token: str, ws_id: str) -> dict:
    r = requests.get(f"{server.base_url}/api/workspace/{ws_id}/env",
                     headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def test_pyjwt_verifies_a_machine_token_from_the_environment(server, owner, running_workspaces):
    token, (ws_a, _) = running_workspaces
    env = agent_env(server, token, ws_a)
    assert env["CHE_MACHINE_AUTH_SIGNATURE__ALGORITHM"] == "RSA"
    assert env["CHE_WORKSPACE_ID"] == ws_a
    public_key = load_der_public_key(base64.b64decode(env["CHE_MACHINE_AUTH_SIGNATURE__PUBLIC__KEY"]))
    machine_token = env["CHE_MACHINE_TOKEN"]

    header = jwt.get_unverified_header(machine_token)
    assert header["alg"] == "RS512"
    assert header["kind"] == "machine_token"
    assert header["typ"] == "JWT"
    claims = jwt.decode(machine_token, key=public_key, algorithms=["RS512"],
                        options={"require": ["wsid", "uid", "uname", "jti"], "verify_exp": False})
    assert claims["wsid"] == env["CHE_WORKSPACE_ID"]
    assert claims["uname"] == owner.username and claims["uid"] == owner.id
    assert set(claims) == {"wsid", "uid", "uname", "jti"}, "exactly Che's claims, no expiry"

    # The same token comes back from the runtime object and the token endpoint.
    auth = {"Authorization": f"Bearer {token}"}
    ws = requests.get(f"{server.base_url}/api/workspace/{ws_a}", headers=auth, timeout=10).json()
    assert ws["runtime"]["machineToken"] == machine_token
    mt = requests.get(f"{server.base_url}/api/machine/token/{ws_a}", headers=auth, timeout=10).json()
    assert mt["machineToken"] == machine_token


def test_pyjwt_rejects_tampering_and_other_algorithms(server, running_workspaces):
    token, (ws_a, ws_b) = running_workspaces
    env = agent_env(server, token, ws_a)
    public_key = load_der_public_key(base64.b64decode(env["CHE_MACHINE_AUTH_SIGNATURE__PUBLIC__KEY"]))
    machine_token = env["CHE_MACHINE_TOKEN"]
    head, payload, sig = machine_token.split(".")
    forged_claims = dict(jwt.decode(machine_token, options={"verify_signature": False}), wsid=ws_b)
    forged_payload = base64.urlsafe_b64encode(json.dumps(forged_claims).encode()).rstrip(b"=").decode()
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(f"{head}.{forged_payload}.{sig}", key=public_key, algorithms=["RS512"])
    with pytest.raises(jwt.InvalidAlgorithmError):
        jwt.decode(machine_token, key=public_key, algorithms=["RS256"])

    # Another workspace's token is signed by the same key but names its own workspace:
    # an agent must compare wsid with CHE_WORKSPACE_ID.
    other = agent_env(server, token, ws_b)["CHE_MACHINE_TOKEN"]
    other_claims = jwt.decode(other, key=public_key, algorithms=["RS512"])
    assert other_claims["wsid"] == ws_b != env["CHE_WORKSPACE_ID"]


def test_machine_token_dies_when_the_workspace_stops(server, running_workspaces):
    token, (_, ws_b) = running_workspaces
    machine_token = agent_env(server, token, ws_b)["CHE_MACHINE_TOKEN"]
    url = f"{server.base_url}/api/workspace/{ws_b}"
    assert requests.get(url, headers={"Authorization": f"Bearer {machine_token}"}, timeout=10).status_code == 200
    r = requests.delete(f"{url}/runtime", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert r.status_code == 204
    r = requests.get(url, headers={"Authorization": f"Bearer {machine_token}"}, timeout=10)
    assert r.status_code == 401
    assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]


def test_the_admin_realms_tokens_open_no_workspace(server):
    """Workspaces live in the default realm: the master realm's tokens (the admin's) are refused."""
    token = password_login(server, "admin", server.admin_password, realm="master",
                           client_id="admin-cli")["access_token"]
    r = requests.get(f"{server.base_url}/api/workspace", headers={"Authorization": f"Bearer {token}"},
                     timeout=10)
    assert r.status_code == 401, r.text
