"""The event channel (Socket.IO at /socket.io) driven by clients nobody here wrote: PyPI
python-socketio and npm socket.io-client 4.x (js/socket_client.mjs).

Codewind's UISocket rules: authenticate by the `authentication` event (socketio-auth) or the v4
handshake `auth`; live access tokens of any enabled realm of the server pass (the token's issuer
names the realm), each socket hearing only its own realm's events; a disabled realm's do not;
sockets that do not authenticate in time are cut; nothing reaches an unauthenticated socket; a
reconnect must authenticate again; revoking a session, or disabling its client, cuts its sockets
at once. With PostgreSQL, two nodes share events.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests
import socketio

from conftest import DEFAULT_CLIENT, DEFAULT_REALM, create_user, make_admin, password_login
from helpers import claims

JS = Path(__file__).resolve().parent / "js"
AUTH_TIMEOUT_S = 5  # the server's default socket_auth_timeout_secs


class Recorder:
    """A python-socketio client that records every event it receives."""

    def __init__(self):
        self.sio = socketio.Client(reconnection=False)
        self.events: list[tuple[str, object]] = []
        self.disconnected = threading.Event()
        self.sio.on("*", lambda ev, data=None: self.events.append((ev, data)))
        self.sio.on("disconnect", lambda *a: self.disconnected.set())

    def connect(self, url: str, *, token: str | None = None, transports=("websocket",)):
        self.sio.connect(url, auth={"token": token} if token else None,
                         transports=list(transports), wait_timeout=10)
        return self

    def names(self) -> list[str]:
        return [e for e, _ in self.events]

    def wait_for(self, name: str, timeout: float = 5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for ev, data in self.events:
                if ev == name:
                    return data
            time.sleep(0.05)
        raise AssertionError(f"no {name!r} within {timeout}s; got {self.events}")

    def close(self):
        if self.sio.connected:
            self.sio.disconnect()


def logout(server, tokens: dict, client_id: str = DEFAULT_CLIENT):
    r = requests.post(f"{server.issuer(DEFAULT_REALM)}/protocol/openid-connect/logout", data={
        "client_id": client_id, "refresh_token": tokens["refresh_token"]}, timeout=30)
    assert r.status_code in (200, 204), r.text


def test_authentication_event_then_ping(server, user):
    name, password = user.username, user.password
    tokens = password_login(server, name, password)
    for transports in (("polling", "websocket"), ("websocket",)):
        c = Recorder().connect(server.base_url, transports=transports)
        assert c.sio.call("authentication", {"token": tokens["access_token"]}, timeout=5) is True
        assert c.wait_for("authenticated") is True
        pong = c.sio.call("ping", {"n": 1}, timeout=5)
        assert pong["subject"]["username"] == name
        c.close()


def test_handshake_auth(server, user):
    name, password = user.username, user.password
    tokens = password_login(server, name, password)
    c = Recorder().connect(server.base_url, token=tokens["access_token"])
    assert c.sio.call("ping", {}, timeout=5)["subject"]["username"] == name
    c.close()
    # Or an Authorization header on the handshake request (non-browser clients).
    h = Recorder()
    h.sio.connect(server.base_url, headers={"Authorization": f"Bearer {tokens['access_token']}"},
                  transports=["polling", "websocket"], wait_timeout=10)
    assert h.sio.call("ping", {}, timeout=5)["subject"]["username"] == name
    h.close()


def test_sockets_per_user_are_capped(server, user):
    name, password = user.username, user.password
    token = password_login(server, name, password)["access_token"]
    held = [Recorder().connect(server.base_url, token=token) for _ in range(32)]  # socket_max_per_user
    # Admission (join, then count across nodes) ends after the CONNECT answer: wait for it, or
    # the extra socket races the last held one and either of them may be the one refused.
    for c in held:
        c.wait_for("authenticated")
    extra = Recorder().connect(server.base_url, token=token)
    assert extra.wait_for("unauthorized")["message"] == "too many connections"
    assert extra.disconnected.wait(5)
    assert all(c.sio.connected for c in held)
    held[0].close()
    time.sleep(0.5)
    again = Recorder().connect(server.base_url, token=token)
    assert again.sio.call("ping", {}, timeout=5)["subject"]["username"] == name
    for c in held[1:] + [again]:
        c.close()


@pytest.mark.parametrize("how", ["event", "handshake"])
@pytest.mark.parametrize("transports", [["polling", "websocket"], ["websocket"]])
def test_socket_io_client(server, user, how, transports):
    name, password = user.username, user.password
    tokens = password_login(server, name, password)
    out = run_js(server, tokens["access_token"], how, transports)
    assert out["connected"] and out["connectError"] is None, out
    assert out["pong"]["subject"]["username"] == name, out
    assert ["authenticated", True] in out["events"]
    assert out["transport"] == "websocket", out  # polling upgraded
    bad = run_js(server, "garbage", how, transports)
    if how == "handshake":
        assert bad["connectError"] == "unauthorized", bad  # generic, says nothing more
    else:
        assert ["unauthorized", {"message": "invalid token"}] in bad["events"], bad


def run_js(server, token, how, transports):
    done = subprocess.run(["node", str(JS / "socket_client.mjs")], input=json.dumps({
        "url": server.base_url, "token": token, "how": how, "transports": transports}),
        capture_output=True, text=True, timeout=60, check=True)
    return json.loads(done.stdout)


def rejected_by_event(server, token) -> str:
    c = Recorder().connect(server.base_url)
    c.sio.emit("authentication", {"token": token} if token is not None else {})
    message = c.wait_for("unauthorized")["message"]
    assert c.disconnected.wait(5), "a refused socket is disconnected"
    return message


def rejected_at_handshake(server, token):
    c = Recorder()
    with pytest.raises(socketio.exceptions.ConnectionError):
        c.connect(server.base_url, token=token)


def test_rejected_tokens(server, realm_admin, user):
    uid, name, password = user.id, user.username, user.password
    tokens = password_login(server, name, password)
    cases = {
        "no token": (None, "no token"),
        "garbage": ("garbage", "invalid token"),
        "refresh token": (tokens["refresh_token"], "invalid token"),
    }
    for label, (token, message) in cases.items():
        assert rejected_by_event(server, token) == message, label
        if token:
            rejected_at_handshake(server, token)

    # A disabled user's token: disabling ends the user's sessions.
    live = Recorder().connect(server.base_url, token=tokens["access_token"])
    realm_admin.update_user(uid, {"enabled": False})
    assert live.wait_for("unauthorized")["message"] == "session revoked"
    assert live.disconnected.wait(5)
    assert rejected_by_event(server, tokens["access_token"]) == "session revoked"
    rejected_at_handshake(server, tokens["access_token"])


@pytest.fixture
def other_realm(server, admin, user, unique):
    """A second realm (made through the Admin REST API with python-keycloak) with a public
    client and a user named like the default realm's `user`; deleted afterwards."""
    name = f"socket-{unique}"
    try:
        admin.create_realm(payload={"realm": name, "enabled": True})
    except TypeError:
        admin.get_realm(name)  # python-keycloak's 201 quirk (see conftest.demo)
    ra = make_admin(server, name)
    ra.create_client(payload={"clientId": "socket-cli", "publicClient": True,
                              "directAccessGrantsEnabled": True})
    password = "Pw-" + uuid.uuid4().hex
    uid = ra.create_user({"username": user.username, "enabled": True, "credentials": [
        {"type": "password", "value": password, "temporary": False}]})
    yield {"realm": name, "client_id": "socket-cli", "username": user.username,
           "password": password, "id": uid}
    admin.delete_realm(name)


def login_in(server, realm: dict) -> dict:
    return password_login(server, realm["username"], realm["password"], realm=realm["realm"],
                          client_id=realm["client_id"])


def test_tokens_of_two_realms_on_one_server(server, admin, user, other_realm):
    """python-socketio and npm socket.io-client authenticate with tokens of two realms; each
    socket is its realm's user (the usernames match); one realm's me-channel events and
    revocations do not reach the other's sockets; the master realm's tokens pass too."""
    mine = password_login(server, user.username, user.password)
    theirs = login_in(server, other_realm)
    theirs_too = login_in(server, other_realm)  # a second session of the other realm's user
    here = Recorder().connect(server.base_url, token=mine["access_token"])
    there = Recorder().connect(server.base_url, token=theirs["access_token"])
    by_event = Recorder().connect(server.base_url)
    assert by_event.sio.call("authentication", {"token": theirs_too["access_token"]},
                             timeout=5) is True
    a = here.sio.call("ping", {}, timeout=5)["subject"]
    b = there.sio.call("ping", {}, timeout=5)["subject"]
    assert (a["realm"], a["username"], a["id"]) == (DEFAULT_REALM, user.username, user.id)
    assert (b["realm"], b["username"], b["id"]) == (
        other_realm["realm"], other_realm["username"], other_realm["id"])
    assert by_event.sio.call("ping", {}, timeout=5)["subject"]["realm"] == other_realm["realm"]

    # npm socket.io-client, both ways of authenticating, with each realm's token.
    for how in ("handshake", "event"):
        for realm, token in ((DEFAULT_REALM, mine), (other_realm["realm"], theirs)):
            out = run_js(server, token["access_token"], how, ["websocket"])
            assert out["connected"] and out["connectError"] is None, out
            assert out["pong"]["subject"]["realm"] == realm, out
            assert out["pong"]["subject"]["username"] == user.username, out

    # The other realm's user signs one session out: its socket is cut, the user's other
    # socket hears `session_revoked` on the me-channel; the default realm's socket, of a
    # user of the same name, hears nothing and stays.
    r = requests.post(f"{server.issuer(other_realm['realm'])}/protocol/openid-connect/logout",
                      data={"client_id": other_realm["client_id"],
                            "refresh_token": theirs["refresh_token"]}, timeout=30)
    assert r.status_code in (200, 204), r.text
    assert there.wait_for("unauthorized")["message"] == "session revoked"
    assert there.disconnected.wait(5)
    notice = by_event.wait_for("session_revoked")
    assert notice["sessionId"] == claims(theirs["access_token"])["sid"]
    time.sleep(0.5)
    assert "session_revoked" not in here.names() and "unauthorized" not in here.names(), here.events
    assert here.sio.call("ping", {}, timeout=5)["subject"]["realm"] == DEFAULT_REALM

    # The master realm (the admin's) is a realm of this server as well.
    admins = password_login(server, "admin", server.admin_password, realm="master",
                            client_id="admin-cli")["access_token"]
    m = Recorder().connect(server.base_url, token=admins)
    assert m.sio.call("ping", {}, timeout=5)["subject"]["realm"] == "master"
    for c in (here, by_event, m):
        c.close()


def test_a_disabled_realms_tokens_are_refused(server, admin, other_realm):
    token = login_in(server, other_realm)["access_token"]
    c = Recorder().connect(server.base_url, token=token)
    assert c.sio.call("ping", {}, timeout=5)["subject"]["realm"] == other_realm["realm"]
    c.close()
    admin.update_realm(other_realm["realm"], {"enabled": False})
    try:
        assert rejected_by_event(server, token) == "invalid token"
        rejected_at_handshake(server, token)
        for how in ("handshake", "event"):
            out = run_js(server, token, how, ["websocket"])
            if how == "handshake":
                assert out["connectError"] == "unauthorized", out
            else:
                assert ["unauthorized", {"message": "invalid token"}] in out["events"], out
            assert out["pong"] is None, out
    finally:
        admin.update_realm(other_realm["realm"], {"enabled": True})


def test_disabling_a_client_ends_its_sessions(server, realm_admin, user):
    """Disabling a client (Admin API) ends every session it has: their sockets are cut and their
    tokens are refused everywhere; the user's sessions of other clients stay; re-enabling the
    client revives nothing."""
    client_id = "ide-" + uuid.uuid4().hex[:8]
    client_uuid = realm_admin.create_client({
        "clientId": client_id, "enabled": True, "publicClient": True,
        "directAccessGrantsEnabled": True, "standardFlowEnabled": False})
    try:
        theirs = password_login(server, user.username, user.password, client_id=client_id)
        other = password_login(server, user.username, user.password)  # tessera-cli
        cut = Recorder().connect(server.base_url, token=theirs["access_token"])
        stays = Recorder().connect(server.base_url, token=other["access_token"])
        assert cut.sio.call("ping", {}, timeout=5)["subject"]["username"] == user.username

        realm_admin.update_client(client_uuid, {"enabled": False})
        assert cut.wait_for("unauthorized")["message"] == "session revoked"
        assert cut.disconnected.wait(5)
        assert stays.wait_for("session_revoked")["sessionId"] == theirs["session_state"]
        assert stays.sio.connected

        def refused_everywhere(refresh_error: str):
            access = theirs["access_token"]
            r = requests.get(f"{server.issuer(DEFAULT_REALM)}/protocol/openid-connect/userinfo",
                             headers={"Authorization": f"Bearer {access}"}, timeout=30)
            assert r.status_code == 401, r.text
            r = requests.get(f"{server.base_url}/api/workspace",
                             headers={"Authorization": f"Bearer {access}"}, timeout=30)
            assert r.status_code == 401, r.text
            assert rejected_by_event(server, access) == "session revoked"
            rejected_at_handshake(server, access)
            r = requests.post(f"{server.issuer(DEFAULT_REALM)}/protocol/openid-connect/token", data={
                "grant_type": "refresh_token", "client_id": client_id,
                "refresh_token": theirs["refresh_token"]}, timeout=30)
            assert r.json()["error"] == refresh_error, r.text

        refused_everywhere("invalid_client")  # while disabled, the client itself is refused
        realm_admin.update_client(client_uuid, {"enabled": True})
        refused_everywhere("invalid_grant")  # the client is back, its sessions are not
        # The other client's session was never touched.
        assert stays.sio.call("ping", {}, timeout=5)["subject"]["username"] == user.username
        stays.close()
    finally:
        realm_admin.delete_client(client_uuid)


def test_expired_token_is_rejected_but_a_live_socket_stays(server, realm_admin):
    lifespan = realm_admin.get_realm(DEFAULT_REALM)["accessTokenLifespan"]
    realm_admin.update_realm(DEFAULT_REALM, {"accessTokenLifespan": 10})  # the minimum
    try:
        u = create_user(realm_admin, "exp")
        tokens = password_login(server, u.username, u.password)
        live = Recorder().connect(server.base_url, token=tokens["access_token"])
        time.sleep(10 + 5 + 1.5)  # lifespan + the verifier's 5 s clock-skew leeway
        # The live socket was not cut by expiry (Codewind's rule) ...
        assert live.sio.connected
        assert live.sio.call("ping", {}, timeout=5)["subject"]["username"] == u.username
        live.close()
        # ... but after the connection drops, the expired token no longer opens one.
        assert rejected_by_event(server, tokens["access_token"]) == "token expired"
        rejected_at_handshake(server, tokens["access_token"])
        fresh = password_login(server, u.username, u.password)["access_token"]
        again = Recorder().connect(server.base_url, token=fresh)
        assert again.sio.connected
        again.close()
        realm_admin.delete_user(u.id)
    finally:
        realm_admin.update_realm(DEFAULT_REALM, {"accessTokenLifespan": lifespan})


def test_unauthenticated_socket_times_out_and_hears_nothing(server, user):
    name, password = user.username, user.password
    idle = Recorder().connect(server.base_url)
    tokens = password_login(server, name, password)
    # Its own events are ignored until it authenticates.
    idle.sio.emit("ping", {})
    # A me-channel event for this user (another session of theirs ends) does not reach it.
    other = password_login(server, name, password)
    watcher = Recorder().connect(server.base_url, token=tokens["access_token"])
    logout(server, other)
    assert watcher.wait_for("session_revoked")["sessionId"]
    assert idle.wait_for("unauthorized", timeout=AUTH_TIMEOUT_S + 3)["message"] == "authentication timeout"
    assert idle.disconnected.wait(5)
    assert idle.names() == ["unauthorized"], idle.events
    watcher.close()


def test_session_revocation_cuts_sockets_and_reconnect_needs_auth(server, user):
    name, password = user.username, user.password
    first = password_login(server, name, password)
    second = password_login(server, name, password)
    a = Recorder().connect(server.base_url, token=first["access_token"])
    b = Recorder().connect(server.base_url, token=second["access_token"])
    logout(server, first)
    assert a.wait_for("unauthorized")["message"] == "session revoked"
    assert a.disconnected.wait(5)
    # The user's other session stays, and hears of it on the me-channel.
    assert b.wait_for("session_revoked")["sessionId"]
    assert b.sio.connected
    # A new connection starts unauthenticated: it must authenticate again.
    c = Recorder().connect(server.base_url)
    c.sio.emit("ping", {})
    time.sleep(0.5)
    assert "pong" not in c.names()
    assert c.sio.call("authentication", {"token": second["access_token"]}, timeout=5) is True
    assert c.sio.call("ping", {}, timeout=5)["subject"]["username"] == name
    b.close()
    c.close()


def test_metrics_count_sockets(server):
    text = requests.get(f"{server.base_url}/metrics", timeout=30).text
    assert "tessera_sockets_connected" in text
    assert 'tessera_sockets_rejected_total{reason="invalid"}' in text


def test_two_nodes_share_events(server, second_node, user):
    """PostgreSQL only: sockets on node B hear what happens on node A."""
    name, password = user.username, user.password
    first = password_login(server, name, password)
    second = password_login(second_node, name, password)
    on_b_first = Recorder().connect(second_node.base_url, token=first["access_token"])
    on_b_second = Recorder().connect(second_node.base_url, token=second["access_token"])
    time.sleep(0.5)
    logout(server, first)  # revoked on node A
    assert on_b_first.wait_for("unauthorized", timeout=10)["message"] == "session revoked"
    assert on_b_first.disconnected.wait(10)
    assert on_b_second.wait_for("session_revoked", timeout=10)["sessionId"]
    assert on_b_second.sio.connected
    on_b_second.close()


def test_oversized_messages_close_the_socket(server, user):
    name, password = user.username, user.password
    tokens = password_login(server, name, password)
    c = Recorder().connect(server.base_url, token=tokens["access_token"])
    assert c.sio.call("ping", {}, timeout=5)["subject"]["username"] == name
    c.sio.emit("ping", {"blob": "x" * (128 * 1024)})  # over socket_max_payload_bytes (64 KiB)
    assert c.disconnected.wait(5), "the server closes a socket that sends too much"
    assert not any("blob" in str(d) for _, d in c.events), "and never handles it"
