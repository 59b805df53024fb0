"""Browser sign-in in a real browser, with a relying party nobody here wrote: headless Debian
Chromium driven by npm playwright-core, and npm openid-client as the OIDC client
(js/browser_flows.mjs). Screenshots of every page land in tests/interop/out/screenshots/.

- code + PKCE through the login page (a wrong password first), ID token, userinfo, refresh,
  silent SSO sign-in, RP-initiated logout with id_token_hint; the refresh token is dead after;
- device authorization approved on the verification page while openid-client polls;
- the account page lists the user's sessions and signs one out; its refresh token then fails.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest
import requests
from keycloak import KeycloakOpenID
from keycloak.exceptions import KeycloakPostError

from conftest import make_admin

HERE = Path(__file__).resolve().parent
JS = HERE / "js"
SHOTS = Path(os.environ.get("TESSERA_INTEROP_OUT", HERE / "out")) / "screenshots"
REALM = "browser"
CLIENT = "web-ide"
USER = "carol"
PASSWORD = "Carol-pw-9f3k2"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def realm(server, admin):
    if not Path(os.environ.get("CHROMIUM", "/usr/bin/chromium")).exists():
        pytest.fail("Chromium is not installed (.ci/run installs Debian's chromium)", pytrace=False)
    port = _free_port()
    admin.create_realm(payload={"realm": REALM, "enabled": True})
    ra = make_admin(server, REALM)
    callback = f"http://127.0.0.1:{port}/cb"
    ra.create_client(payload={
        "clientId": CLIENT, "name": "Web IDE", "publicClient": True, "enabled": True,
        "standardFlowEnabled": True, "directAccessGrantsEnabled": True,
        "redirectUris": [callback],
        "attributes": {"post.logout.redirect.uris": f"http://127.0.0.1:{port}/bye",
                       "oauth2.device.authorization.grant.enabled": "true"},
    })
    ra.create_user(payload={
        "username": USER, "email": "carol@example.com", "firstName": "Carol", "lastName": "Danvers",
        "enabled": True, "emailVerified": True,
        "credentials": [{"type": "password", "value": PASSWORD, "temporary": False}],
    })
    yield {"port": port, "callback": callback, "post_logout": f"http://127.0.0.1:{port}/bye"}
    admin.delete_realm(REALM)


def run_flow(flow: str, cfg: dict) -> dict:
    cfg = {"username": USER, "password": PASSWORD, "clientId": CLIENT,
           "screenshots": str(SHOTS / flow), **cfg}
    p = subprocess.run(["node", str(JS / "browser_flows.mjs"), flow, json.dumps(cfg)],
                       capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, f"{flow}: {p.stderr}\n{p.stdout}"
    return json.loads(p.stdout)


def openid(server) -> KeycloakOpenID:
    return KeycloakOpenID(server_url=server.base_url + "/", realm_name=REALM, client_id=CLIENT, timeout=30)


def test_code_flow_with_openid_client_in_chromium(server, realm):
    out = run_flow("code", {
        "issuer": server.issuer(REALM),
        "callbackPort": realm["port"],
        "redirectUri": realm["callback"],
        "postLogoutUri": realm["post_logout"],
    })
    assert out["loginError"] == "Invalid username or password."
    assert out["idToken"]["aud"] == CLIENT and out["idToken"]["nonce"] and out["idToken"]["at_hash"]
    assert out["idToken"]["sid"] and out["idToken"]["auth_time"] > 0
    assert out["userinfo"]["preferred_username"] == USER
    assert out["userinfo"]["email"] == "carol@example.com"
    assert out["logoutState"] == "bye-state"
    assert out["refreshAfterLogout"] == "invalid_grant"
    for name in ("login", "login-failed"):
        assert (SHOTS / "code" / f"{name}.png").stat().st_size > 1000


def test_device_flow_approved_in_chromium(server, realm):
    out = run_flow("device", {"issuer": server.issuer(REALM)})
    assert out["shownCode"] == out["userCode"]
    assert out["shownClient"] == "Web IDE"
    assert out["result"] == "Device connected"
    assert out["username"] == USER
    # The token is live: userinfo answers for it.
    r = requests.get(f"{server.issuer(REALM)}/protocol/openid-connect/userinfo",
                     headers={"Authorization": f"Bearer {out['accessToken']}"}, timeout=10)
    assert r.status_code == 200 and r.json()["preferred_username"] == USER
    for name in ("device-login", "device-confirm", "device-approved"):
        assert (SHOTS / "device" / f"{name}.png").stat().st_size > 1000


def test_account_page_signs_a_session_out(server, realm):
    oid = openid(server)
    cli = oid.token(USER, PASSWORD)  # an app connection, as a CLI would make it
    sid = cli["session_state"]
    live = oid.refresh_token(cli["refresh_token"])  # live before (and rotated)
    out = run_flow("account", {"accountUrl": f"{server.issuer(REALM)}/account", "signOutSession": sid})
    assert sid in out["listed"]
    assert out["notice"] == "The session was signed out."
    assert sid not in out["after"]
    with pytest.raises(KeycloakPostError) as e:
        oid.refresh_token(live["refresh_token"])
    assert e.value.response_code == 400 and b"invalid_grant" in e.value.response_body
    for name in ("account", "account-signed-out"):
        assert (SHOTS / "account" / f"{name}.png").stat().st_size > 1000
