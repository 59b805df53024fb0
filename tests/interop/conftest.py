"""Fixtures for the Tessera interop suite.

The session fixture ``server`` starts ``tessera serve`` on a free loopback port with a fresh
data dir, waits for ``/health/ready`` and stops it with SIGTERM at the end.

Environment:
  TESSERA_BIN                     server binary (default: <repo>/target/debug/tessera)
  TESSERA_INTEROP_DATABASE_URL    if set, passed to the server as TESSERA_DATABASE_URL
  TESSERA_INTEROP_BASE_URL        if set (with TESSERA_INTEROP_ADMIN_PASSWORD), no server is
                                  started; the suite runs against that URL instead (e.g. a
                                  real Keycloak, to check the tests themselves)
  TESSERA_INTEROP_ADMIN_PASSWORD  password of the master realm's "admin" user for the above
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
from keycloak import KeycloakAdmin, KeycloakOpenID

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0

DEMO_REALM = "demo"
DEMO_CLIENT_ID = "demo-app"
DEMO_REDIRECT_URIS = ["http://localhost:8089/callback"]
DEMO_USER = "alice"
DEMO_USER_EMAIL = "alice@example.com"

# Realm-less endpoints (Che's settings and workspaces, the Verida-style /auth/*, the Socket.IO
# channel, provider connect and sign-up, Che's /api/oauth*) act in the server's default realm,
# never in master; the server creates it on first start with this public client.
DEFAULT_REALM = "tessera"
DEFAULT_CLIENT = "tessera-cli"


@dataclasses.dataclass
class Server:
    base_url: str  # no trailing slash, e.g. http://127.0.0.1:41234
    admin_password: str
    proc: subprocess.Popen | None = None
    log_path: Path | None = None

    def log_tail(self, limit: int = 8000) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no server log captured)"
        text = self.log_path.read_text(errors="replace")
        return text[-limit:]

    def issuer(self, realm: str) -> str:
        return f"{self.base_url}/realms/{realm}"


_SERVERS: list[Server] = []


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(tmp_dir: Path, extra_env: dict | None = None, public_url: str | None = None,
                  port: int | None = None) -> Server:
    """Start `tessera serve` in tmp_dir; on `port` if given (when its URL must be known before
    the start, e.g. for another server's configuration), else on a free one."""
    binary = Path(os.environ.get("TESSERA_BIN", REPO / "target" / "debug" / "tessera"))
    if not binary.is_file():
        pytest.fail(f"Tessera binary not found at {binary} (build it or set TESSERA_BIN)", pytrace=False)

    port = port or _free_port()
    base_url = f"http://127.0.0.1:{port}"
    admin_password = "Adm-" + secrets.token_urlsafe(18)
    data_dir = tmp_dir / "data"
    data_dir.mkdir()
    log_path = tmp_dir / "server.log"

    # The server refuses to start on TESSERA_* variables it does not know, so the suite's own
    # variables (TESSERA_BIN, TESSERA_INTEROP_*) must not reach it.
    env = {k: v for k, v in os.environ.items()
           if k not in ("TESSERA_BIN", "TESSERA_DATABASE_URL") and not k.startswith("TESSERA_INTEROP_")}
    env["TESSERA_BOOTSTRAP_ADMIN_PASSWORD"] = admin_password
    env.update(extra_env or {})
    env.setdefault("NO_COLOR", "1")  # plain server log in failure reports
    # SIGTERM drains for drain_secs (5 by default) before exiting; the suite's servers need no
    # load balancer to notice, so they stop after 1 s (test_shutdown.py tests the drain itself).
    env.setdefault("TESSERA_DRAIN_SECS", "1")
    if os.environ.get("TESSERA_INTEROP_DATABASE_URL") and "TESSERA_DATABASE_URL" not in (extra_env or {}):
        env["TESSERA_DATABASE_URL"] = os.environ["TESSERA_INTEROP_DATABASE_URL"]

    cmd = [
        str(binary),
        "serve",
        "--data-dir", str(data_dir),
        "--listen", f"127.0.0.1:{port}",
        "--public-url", public_url or base_url,
    ]
    log = open(log_path, "wb")
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    server = Server(base_url=base_url, admin_password=admin_password, proc=proc, log_path=log_path)
    _SERVERS.append(server)

    deadline = time.monotonic() + READY_TIMEOUT_S
    last = "no response yet"
    while True:
        code = proc.poll()
        if code is not None:
            pytest.fail(
                f"tessera exited with code {code} before becoming ready.\n"
                f"command: {' '.join(cmd)}\n--- server output ---\n{server.log_tail()}",
                pytrace=False,
            )
        try:
            r = requests.get(f"{base_url}/health/ready", timeout=2)
            if r.status_code == 200:
                return server
            last = f"HTTP {r.status_code}: {r.text[:200]}"
        except requests.RequestException as e:  # not listening yet
            last = repr(e)
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            pytest.fail(
                f"tessera not ready after {READY_TIMEOUT_S:.0f}s (last: {last}).\n"
                f"--- server output ---\n{server.log_tail()}",
                pytrace=False,
            )
        time.sleep(0.2)


def _stop_server(server: Server) -> None:
    proc = server.proc
    assert proc is not None
    if proc.poll() is not None:
        pytest.fail(
            f"tessera died during the test session (exit code {proc.returncode}).\n"
            f"--- server output ---\n{server.log_tail()}",
            pytrace=False,
        )
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"tessera did not exit within {STOP_TIMEOUT_S:.0f}s of SIGTERM", pytrace=False)
    # A clean shutdown on SIGTERM exits 0 (or, for servers that re-raise the signal, -SIGTERM).
    assert code in (0, -signal.SIGTERM), f"tessera exited with {code} after SIGTERM\n{server.log_tail()}"


def own_database(request) -> str | None:
    """With PostgreSQL (TESSERA_INTEROP_DATABASE_URL): a fresh database, dropped when `request`'s
    scope ends, for a server that is a deployment of its own (on the suite's database it would be
    a node of the suite's server and share its socket adapter). None on SQLite."""
    base = os.environ.get("TESSERA_INTEROP_DATABASE_URL")
    if not base:
        return None
    if not shutil.which("psql"):
        pytest.fail("psql is needed to create PostgreSQL databases for extra servers", pytrace=False)
    name = "tessera_x_" + secrets.token_hex(6)
    subprocess.run(["psql", base, "-qAtc", f"CREATE DATABASE {name}"], check=True,
                   capture_output=True, timeout=30)
    request.addfinalizer(lambda: subprocess.run(
        ["psql", base, "-qAtc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"],
        capture_output=True, timeout=30))
    return urlunsplit(urlsplit(base)._replace(path="/" + name))


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Server:
    external = os.environ.get("TESSERA_INTEROP_BASE_URL")
    if external:
        yield Server(
            base_url=external.rstrip("/"),
            admin_password=os.environ["TESSERA_INTEROP_ADMIN_PASSWORD"],
        )
        return
    srv = _start_server(tmp_path_factory.mktemp("tessera"))
    yield srv
    _stop_server(srv)


@pytest.fixture(scope="session")
def second_node(server, tmp_path_factory) -> Server:
    """Another `tessera serve` on the same PostgreSQL database and master key (multi-node);
    skipped on SQLite, which is one node by design."""
    if not os.environ.get("TESSERA_INTEROP_DATABASE_URL") or server.proc is None:
        pytest.skip("multi-node needs PostgreSQL (TESSERA_INTEROP_DATABASE_URL)")
    first_dir = server.log_path.parent / "data"
    key = (first_dir / "master.key").read_text().strip()
    # Nodes behind one load balancer share the master key and the public URL (the issuer).
    node = _start_server(tmp_path_factory.mktemp("tessera-b"), {"TESSERA_MASTER_KEY": key},
                         public_url=server.base_url)
    node.admin_password = server.admin_password
    yield node
    _stop_server(node)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """On failure, show the end of the server log: it usually says why."""
    if exitstatus == 0:
        return
    for srv in _SERVERS:
        terminalreporter.section(f"tessera server log ({srv.log_path})")
        terminalreporter.write_line(srv.log_tail(6000))


# ---------------------------------------------------------------- clients


def make_admin(server: Server, realm: str = "master", *, prefix: str = "") -> KeycloakAdmin:
    """KeycloakAdmin logged in as master/admin via admin-cli, operating on `realm`."""
    return KeycloakAdmin(
        server_url=server.base_url + prefix + "/",
        username="admin",
        password=server.admin_password,
        realm_name=realm,
        user_realm_name="master" if realm != "master" else None,
        client_id="admin-cli",
        timeout=30,
    )


@pytest.fixture(scope="session")
def admin(server) -> KeycloakAdmin:
    return make_admin(server)


@dataclasses.dataclass
class Demo:
    realm: str
    client_id: str
    client_uuid: str
    client_secret: str
    username: str
    password: str
    user_id: str
    email: str
    admin: KeycloakAdmin  # operating on the demo realm

    def openid(self, server: Server, *, prefix: str = "", secret: str | None = "default") -> KeycloakOpenID:
        return KeycloakOpenID(
            server_url=server.base_url + prefix + "/",
            realm_name=self.realm,
            client_id=self.client_id,
            client_secret_key=self.client_secret if secret == "default" else secret,
            timeout=30,
        )


@pytest.fixture(scope="session")
def demo(server, admin) -> Demo:
    """Realm "demo" with a confidential client and a user, all created through KeycloakAdmin."""
    try:
        admin.create_realm(payload={"realm": DEMO_REALM, "enabled": True})
    except TypeError:
        # python-keycloak rejects a JSON body on the 201 (test_realm_lifecycle reports that);
        # carry on if the realm exists, so the other tests still say something useful.
        admin.get_realm(DEMO_REALM)
    realm_admin = make_admin(server, DEMO_REALM)
    secret = "s3cr3t-" + secrets.token_hex(12)
    client_uuid = realm_admin.create_client(
        payload={
            "clientId": DEMO_CLIENT_ID,
            "enabled": True,
            "publicClient": False,
            "secret": secret,
            "directAccessGrantsEnabled": True,
            "serviceAccountsEnabled": True,
            "standardFlowEnabled": True,
            "redirectUris": DEMO_REDIRECT_URIS,
        }
    )
    password = "Pw-" + secrets.token_urlsafe(12)
    user_id = realm_admin.create_user(
        payload={
            "username": DEMO_USER,
            "email": DEMO_USER_EMAIL,
            "firstName": "Alice",
            "lastName": "Liddell",
            "enabled": True,
            "emailVerified": True,
            "credentials": [{"type": "password", "value": password, "temporary": False}],
        }
    )
    yield Demo(
        realm=DEMO_REALM,
        client_id=DEMO_CLIENT_ID,
        client_uuid=client_uuid,
        client_secret=secret,
        username=DEMO_USER,
        password=password,
        user_id=user_id,
        email=DEMO_USER_EMAIL,
        admin=realm_admin,
    )
    admin.delete_realm(DEMO_REALM)


@pytest.fixture(scope="session")
def realm_admin(server) -> KeycloakAdmin:
    """KeycloakAdmin (master/admin) operating on the default realm."""
    return make_admin(server, DEFAULT_REALM)


@dataclasses.dataclass
class User:
    id: str
    username: str
    password: str


def create_user(realm_admin: KeycloakAdmin, prefix: str = "user", **rep) -> User:
    """A new enabled user with a password, created through the Admin API in the admin's realm."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    password = "Pw-" + uuid.uuid4().hex
    uid = realm_admin.create_user({"username": name, "enabled": True, **rep, "credentials": [
        {"type": "password", "value": password, "temporary": False}]})
    return User(uid, name, password)


def password_login(server: Server, username: str, password: str, *, realm: str = DEFAULT_REALM,
                   client_id: str = DEFAULT_CLIENT, **params) -> dict:
    """The password grant (the default realm's public client unless told otherwise)."""
    r = requests.post(f"{server.issuer(realm)}/protocol/openid-connect/token", timeout=30, data={
        "grant_type": "password", "client_id": client_id, "username": username,
        "password": password, **params})
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture
def user(realm_admin) -> User:
    """A fresh user of the default realm, deleted afterwards."""
    u = create_user(realm_admin)
    yield u
    realm_admin.delete_user(u.id)


@pytest.fixture
def unique() -> str:
    """A short unique lowercase suffix for names created by one test."""
    return uuid.uuid4().hex[:10]
