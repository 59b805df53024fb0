"""No token reaches the server log, at any level.

A server of its own runs with RUST_LOG=trace while tokens travel every path that carries one:
the password grant (with an ID token), refresh, introspection, userinfo, `?token=` on a read
and on a refused write, Socket.IO authentication by the `authentication` event (over polling)
and by the handshake auth (websocket), a refresh token sent to a socket by mistake, and logout
(which tells the sockets; on PostgreSQL through the database's NOTIFY). Then the whole log is
searched for every token (and for the payload and signature of every JWT, which are unique to
it), the password and the client secret.

Tessera caps socketioxide, engineioxide and tokio_postgres at INFO whatever RUST_LOG says: their
debug and trace events print packets, the handshake auth and query parameters. The test also
checks that the log really ran at trace level for everything else, and that those targets wrote
nothing below INFO, so it fails if the cap goes.
"""

from __future__ import annotations

import dataclasses
import os
import re
import secrets

import pytest
import requests

from conftest import (DEFAULT_CLIENT, DEFAULT_REALM, _start_server, _stop_server, create_user,
                      make_admin, own_database, password_login)
from test_socket import Recorder

PAYLOAD_LOGGERS = ("socketioxide", "engineioxide", "socketioxide_postgres", "tokio_postgres",
                   "tungstenite", "tokio_tungstenite")

if os.environ.get("TESSERA_INTEROP_BASE_URL"):
    pytest.skip("reads the log of a server it starts itself", allow_module_level=True)


def secret_parts(name: str, value: str) -> dict[str, str]:
    """The value, and for a JWT its payload and signature (the header is the same in many)."""
    parts = {name: value}
    if value.count(".") == 2:
        _, payload, signature = value.split(".")
        parts[f"{name} (payload)"] = payload
        parts[f"{name} (signature)"] = signature
    return parts


@dataclasses.dataclass
class Traced:
    log: str  # the whole server log
    below_info: list[str]  # its TRACE and DEBUG lines
    secrets: dict[str, str]  # what must not be in it, by name


@pytest.fixture(scope="module")
def traced(request, tmp_path_factory) -> Traced:
    """The tokens' journey through a server logging at trace level, and its log afterwards."""
    tmp_path = tmp_path_factory.mktemp("traced")
    env = {"RUST_LOG": "trace"}
    database = own_database(request)
    if database:
        env["TESSERA_DATABASE_URL"] = database
    srv = _start_server(tmp_path, env)
    token_url = f"{srv.issuer(DEFAULT_REALM)}/protocol/openid-connect"
    sockets: list[Recorder] = []
    try:
        realm_admin = make_admin(srv, DEFAULT_REALM)
        user = create_user(realm_admin, "log")
        client_secret = "s-" + secrets.token_hex(16)
        realm_admin.create_client({"clientId": "log-probe", "enabled": True, "publicClient": False,
                                   "secret": client_secret, "standardFlowEnabled": False})

        first = password_login(srv, user.username, user.password, scope="openid")
        assert first["id_token"], first
        r = requests.post(f"{token_url}/token", timeout=30, data={
            "grant_type": "refresh_token", "client_id": DEFAULT_CLIENT,
            "refresh_token": first["refresh_token"]})
        assert r.status_code == 200, r.text
        second = r.json()
        access = second["access_token"]
        for token in (access, second["refresh_token"]):
            r = requests.post(f"{token_url}/token/introspect", auth=("log-probe", client_secret),
                              data={"token": token}, timeout=30)
            assert r.status_code == 200 and r.json()["active"] is True, r.text
        r = requests.get(f"{token_url}/userinfo", headers={"Authorization": f"Bearer {access}"}, timeout=30)
        assert r.status_code == 200, r.text
        r = requests.get(f"{srv.base_url}/api/workspace", params={"token": access}, timeout=30)
        assert r.status_code == 200, r.text
        r = requests.post(f"{srv.base_url}/api/workspace", params={"token": access}, json={"name": "x"},
                          timeout=30)
        assert r.status_code == 401, "?token= is for reads only"

        by_event = Recorder().connect(srv.base_url, transports=("polling",))
        sockets.append(by_event)
        assert by_event.sio.call("authentication", {"token": access}, timeout=5) is True
        by_handshake = Recorder().connect(srv.base_url, token=access)
        sockets.append(by_handshake)
        for s in (by_event, by_handshake):
            assert s.sio.call("ping", {}, timeout=5)["subject"]["username"] == user.username
        mistaken = Recorder().connect(srv.base_url, transports=("polling", "websocket"))
        sockets.append(mistaken)
        mistaken.sio.emit("authentication", {"token": second["refresh_token"]})
        assert mistaken.wait_for("unauthorized")["message"] == "invalid token"

        r = requests.post(f"{token_url}/logout", timeout=30, data={
            "client_id": DEFAULT_CLIENT, "refresh_token": second["refresh_token"]})
        assert r.status_code in (200, 204), r.text
        assert by_handshake.wait_for("unauthorized")["message"] == "session revoked"
        r = requests.get(f"{token_url}/userinfo", headers={"Authorization": f"Bearer {access}"}, timeout=30)
        assert r.status_code == 401, r.text
    finally:
        for s in sockets:
            s.close()
        _stop_server(srv)

    log = srv.log_path.read_text(errors="replace")
    secrets_ = {"password": user.password, "client secret": client_secret}
    for grant, tokens in (("password grant", first), ("refresh", second)):
        for kind in ("access_token", "refresh_token", "id_token"):
            if tokens.get(kind):
                secrets_.update(secret_parts(f"{grant} {kind}", tokens[kind]))
    return Traced(log, [line for line in log.splitlines() if re.search(r"\s(TRACE|DEBUG)\s", line)],
                  secrets_)


def test_the_log_ran_at_trace_level(traced):
    assert len(traced.below_info) > 50, \
        f"RUST_LOG=trace was not in force: {len(traced.below_info)} lines below INFO"
    assert any(" TRACE " in line for line in traced.below_info)


def test_payload_loggers_write_nothing_below_info(traced):
    targets = "|".join(PAYLOAD_LOGGERS)
    uncapped = [line for line in traced.below_info
                if re.search(rf"\s(TRACE|DEBUG)\s+(\S+: )*({targets})(::\w+)*:", line)]
    assert not uncapped, "payload loggers below INFO:\n" + "\n".join(uncapped[:5])


def test_no_token_reaches_the_log(traced):
    log = traced.log
    hexed = log.lower()  # frame dumps print payloads as hex too
    leaked = sorted(name for name, value in traced.secrets.items()
                    if value in log or value.encode().hex() in hexed)
    where = [line[:160] for line in log.splitlines()
             if any(value in line for value in traced.secrets.values())]
    assert not leaked, f"in the server log: {leaked}\n" + "\n".join(where[:5])
