"""The event channel outlives its database (PostgreSQL only): two nodes of a deployment of their
own (their own database, one master key), python-socketio sockets on both.

1. The socket adapter's connection alone is cut and cannot come back (new connections to the
   database are refused, the store's pooled connections stay): readiness says so (503,
   event_channel DOWN), and a logout on node A still cuts the session's socket on A. The remote
   publish fails; the local one must not be skipped.
2. The database goes away for every connection: /health/ready answers 503 on both nodes, quickly.
3. The database comes back: readiness returns to 200 by itself, the adapter listens again, a
   logout on either node cuts the session's socket on the other, and new sockets authenticate.

An outage is made with `ALTER DATABASE ... ALLOW_CONNECTIONS false` and pg_terminate_backend,
which is what a restart does to a node's connections, without stopping the PostgreSQL server the
rest of the suite uses.
"""

from __future__ import annotations

import concurrent.futures
import os
import subprocess
import time
from urllib.parse import urlsplit

import pytest
import requests

from conftest import (DEFAULT_REALM, _start_server, _stop_server, create_user, make_admin,
                      own_database, password_login)
from test_socket import Recorder, logout

if not os.environ.get("TESSERA_INTEROP_DATABASE_URL"):
    pytest.skip("the socket adapter's database is PostgreSQL's", allow_module_level=True)
if os.environ.get("TESSERA_INTEROP_BASE_URL"):
    pytest.skip("starts and breaks servers of its own", allow_module_level=True)

ADAPTER = "tessera-events"  # the application_name of the adapter's connection


def psql(sql: str) -> str:
    base = os.environ["TESSERA_INTEROP_DATABASE_URL"]
    done = subprocess.run(["psql", base, "-qAtc", sql], check=True, capture_output=True, text=True,
                          timeout=30)
    return done.stdout.strip()


def eventually(what: str, check, timeout: float = 20.0, every: float = 0.2):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"{what}: not within {timeout}s (last: {last!r})")


def ready(node) -> tuple[int, float]:
    start = time.monotonic()
    try:
        code = requests.get(f"{node.base_url}/health/ready", timeout=10).status_code
    except requests.RequestException:
        code = 0
    return code, time.monotonic() - start


def test_the_event_channel_outlives_its_database(request, tmp_path):
    url = own_database(request)
    db = urlsplit(url).path.lstrip("/")
    (tmp_path / "a").mkdir()
    a = _start_server(tmp_path / "a", {"TESSERA_DATABASE_URL": url})
    key = (tmp_path / "a" / "data" / "master.key").read_text().strip()
    (tmp_path / "b").mkdir()
    b = _start_server(tmp_path / "b", {"TESSERA_DATABASE_URL": url, "TESSERA_MASTER_KEY": key},
                      public_url=a.base_url)
    b.admin_password = a.admin_password
    sockets: list[Recorder] = []
    try:
        user = create_user(make_admin(a, DEFAULT_REALM), "outage")
        login = lambda node: password_login(node, user.username, user.password)  # noqa: E731

        def connect(node, tokens) -> Recorder:
            s = Recorder().connect(node.base_url, token=tokens["access_token"])
            sockets.append(s)
            return s

        adapters = psql(f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' "
                        f"AND application_name = '{ADAPTER}'")
        assert int(adapters) == 2, f"one adapter connection per node, named {ADAPTER}"
        if "sslmode=require" in url:  # CI's PostgreSQL run: every connection encrypted
            plain = psql("SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) "
                         f"WHERE a.datname = '{db}' AND NOT s.ssl")
            assert int(plain) == 0, f"{plain} connections without TLS (sslmode=require)"

        # 1. Only the adapters' connections die, and cannot come back.
        first = login(a)
        on_a = connect(a, first)
        # Open a few pooled connections first (the pool opens them lazily):
        # the logout below may need more than one at once while no new one
        # can be made.
        # (Parallel realm reads: parallel logins would trip the throttle.)
        realm_info = f"{a.base_url}/realms/{DEFAULT_REALM}"
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            for r in pool.map(lambda _: requests.get(realm_info, timeout=10), range(24)):
                assert r.status_code == 200, r.text
        psql(f"ALTER DATABASE {db} ALLOW_CONNECTIONS false")
        psql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}' "
             f"AND application_name = '{ADAPTER}'")
        eventually("node A reports its adapter down",
                   lambda: "tessera_event_adapter_connected 0" in
                   requests.get(f"{a.base_url}/metrics", timeout=10).text)
        body = requests.get(f"{a.base_url}/health/ready", timeout=10)
        assert body.status_code == 503 and {"name": "event_channel", "status": "DOWN"} in \
            body.json()["checks"], f"readiness says the event channel is down: {body.text}"
        logout(a, first)  # the store still has its pooled connections
        assert on_a.wait_for("unauthorized", timeout=10)["message"] == "session revoked"
        assert on_a.disconnected.wait(10), "same-node revocation cuts the socket with the adapter down"

        # 2. Every connection dies: both nodes say so at once.
        psql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'")
        for node in (a, b):
            def down(n=node):
                answer = ready(n)
                return answer if answer[0] == 503 else None
            _, took = eventually("readiness 503", down)
            assert took < 1.5, f"readiness took {took:.2f}s with the database down"

        # 3. Back: everything recovers by itself.
        psql(f"ALTER DATABASE {db} ALLOW_CONNECTIONS true")
        for node in (a, b):
            eventually("readiness back to 200", lambda n=node: ready(n)[0] == 200, timeout=30)
        eventually("both adapters listen again", lambda: int(psql(
            f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' "
            f"AND application_name = '{ADAPTER}'")) == 2, timeout=30)
        assert "tessera_event_adapter_reconnects_total 1" in \
            requests.get(f"{b.base_url}/metrics", timeout=10).text

        on_b = connect(b, second := login(a))  # a session of node A, its socket on node B
        on_a = connect(a, third := login(b))  # and the other way round
        time.sleep(0.5)
        logout(a, second)
        assert on_b.wait_for("unauthorized", timeout=10)["message"] == "session revoked"
        assert on_b.disconnected.wait(10), "a logout on A cuts B's socket after the outage"
        logout(b, third)
        assert on_a.wait_for("unauthorized", timeout=10)["message"] == "session revoked"
        assert on_a.disconnected.wait(10), "a logout on B cuts A's socket after the outage"
        fresh = login(b)
        for node in (a, b):
            s = connect(node, fresh)
            assert s.sio.call("ping", {}, timeout=5)["subject"]["username"] == user.username
    finally:
        psql(f"ALTER DATABASE {db} ALLOW_CONNECTIONS true")
        for s in sockets:
            s.close()
        for node in (b, a):
            _stop_server(node)
