"""Shutdown, slow clients and a database that goes away (docs/operations.md, "Shutdown and
overload").

- SIGTERM under a burst of concurrent requests: readiness turns 503 at once, every request sent
  while the listener is still open is answered (none is reset or refused), and the process exits
  within the drain period. A second signal exits at once.
- Stalled clients (half a request line, then nothing) are closed by the header read timeout, and
  while they are held they do not delay shutdown beyond the drain period.
- PostgreSQL behind a TCP proxy that is cut: /health/ready answers 503 within a second, a token
  request answers 503 temporarily_unavailable with Retry-After (not 500), and both recover on
  their own once the proxy is back.

Every server here is one of its own, started with short limits through TESSERA_* settings.

Environment:
  TESSERA_INTEROP_STALLED  stalled connections to open (default 50; the fault test used 300)
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

from conftest import DEFAULT_CLIENT, DEFAULT_REALM, _start_server, create_user, make_admin, own_database

if os.environ.get("TESSERA_INTEROP_BASE_URL"):
    pytest.skip("signals a server it starts itself", allow_module_level=True)

STALLED = int(os.environ.get("TESSERA_INTEROP_STALLED", "50"))
DRAIN_S = 3
# The listener closes one second before the end of the drain period; requests sent before this
# (after SIGTERM) must all be answered.
ACCEPTING_S = DRAIN_S - 1.5
# Exit is due at the end of the drain period; allow for process teardown on a busy machine.
EXIT_SLACK_S = 1.5


def _own(request, **settings: str) -> dict:
    """Settings for a server of its own: on PostgreSQL, with a database of its own."""
    url = own_database(request)
    return {**settings, **({"TESSERA_DATABASE_URL": url} if url else {})}


def _stop_watch(proc: subprocess.Popen) -> float:
    """Seconds until `proc` exits (it must, within the drain period and its slack)."""
    start = time.monotonic()
    try:
        proc.wait(timeout=DRAIN_S + 10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"tessera still running {DRAIN_S + 10}s after SIGTERM")
    return time.monotonic() - start


def test_sigterm_under_burst_answers_every_accepted_request(tmp_path, request):
    srv = _start_server(tmp_path, _own(request, TESSERA_DRAIN_SECS=str(DRAIN_S)))
    url = f"{srv.base_url}/realms/{DEFAULT_REALM}/.well-known/openid-configuration"
    sent_at: list[float] = []
    results: list[tuple[float, object]] = []
    lock = threading.Lock()

    def one() -> None:
        t = time.monotonic()
        try:
            # A fresh connection per request, as a load balancer's would be.
            r = requests.get(url, timeout=10, headers={"Connection": "close"})
            outcome: object = r.status_code
        except requests.RequestException as e:
            outcome = e
        with lock:
            results.append((t, outcome))

    with ThreadPoolExecutor(max_workers=32) as pool:
        for _ in range(40):
            pool.submit(one)
        time.sleep(0.05)
        srv.proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        # Readiness is 503 from the start of the drain (the signal reaches the server's handler
        # a moment after kill() returns: poll briefly).
        while True:
            ready = requests.get(f"{srv.base_url}/health/ready", timeout=2)
            ready_after = time.monotonic() - signalled
            if ready.status_code == 503 or ready_after > 1.5:
                break
            time.sleep(0.02)
        # The burst goes on while the load balancer has not noticed yet.
        while time.monotonic() - signalled < ACCEPTING_S:
            for _ in range(10):
                pool.submit(one)
            time.sleep(0.05)
    code = srv.proc.wait(timeout=DRAIN_S + 10)
    took = time.monotonic() - signalled

    assert ready.status_code == 503, ready.text
    assert ready.json()["status"] == "DOWN" and ready.headers.get("Retry-After"), ready.headers
    assert ready_after < 1.5, f"readiness took {ready_after:.2f}s to say 503"
    # Sent while the listener was open: answered. Sent later (a slow worker): answered or refused,
    # never accepted and then dropped.
    early = [(round(t - signalled, 2), repr(o)) for t, o in results
             if t < signalled + ACCEPTING_S and o != 200]
    late = [(round(t - signalled, 2), repr(o)) for t, o in results
            if t >= signalled + ACCEPTING_S and o != 200 and "refused" not in repr(o).lower()]
    assert not early, f"{len(early)} of {len(results)} requests not answered 200: {early[:5]}"
    assert not late, f"accepted, then dropped: {late[:5]}"
    assert len(results) >= 100, len(results)
    assert code == 0, srv.log_tail()
    assert took < DRAIN_S + EXIT_SLACK_S, f"exit {took:.2f}s after SIGTERM (drain {DRAIN_S}s)"


def test_a_second_signal_exits_at_once(tmp_path, request):
    srv = _start_server(tmp_path, _own(request, TESSERA_DRAIN_SECS="60"))
    srv.proc.send_signal(signal.SIGTERM)
    # The signal reaches the server's handler a moment after kill() returns: poll briefly.
    deadline = time.monotonic() + 2
    while requests.get(f"{srv.base_url}/health/ready", timeout=2).status_code != 503:
        assert time.monotonic() < deadline, "readiness did not turn 503 after SIGTERM"
        time.sleep(0.02)
    srv.proc.send_signal(signal.SIGINT)
    start = time.monotonic()
    code = srv.proc.wait(timeout=10)
    assert time.monotonic() - start < 2, "the second signal did not cut the 60 s drain short"
    assert code == 1, code


def _stall(base_url: str, n: int) -> list[socket.socket]:
    """n connections that send half a request line and then nothing."""
    host, port = urlsplit(base_url).hostname, urlsplit(base_url).port
    socks = []
    for _ in range(n):
        s = socket.create_connection((host, port), timeout=5)
        s.sendall(b"GET /health/li")
        socks.append(s)
    return socks


def _closed_by_server(s: socket.socket, wait_s: float) -> bool:
    s.settimeout(wait_s)
    try:
        return s.recv(1024) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def test_stalled_clients_are_cut_and_do_not_delay_shutdown(tmp_path, request):
    header_s = 2
    srv = _start_server(tmp_path, _own(request, TESSERA_DRAIN_SECS=str(DRAIN_S),
                                       TESSERA_HEADER_READ_TIMEOUT_SECS=str(header_s)))
    host, port = urlsplit(srv.base_url).hostname, urlsplit(srv.base_url).port
    stalled = _stall(srv.base_url, STALLED)
    # A keep-alive connection that stalls on its second request, and one that just stays idle.
    stalls_later = socket.create_connection((host, port), timeout=5)
    idle = socket.create_connection((host, port), timeout=5)
    for s in (stalls_later, idle):
        s.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 200"), "first request answered"
    stalls_later.sendall(b"GET /health/li")
    stalled.append(stalls_later)
    try:
        # They hold no one else up...
        assert requests.get(f"{srv.base_url}/health/ready", timeout=2).status_code == 200
        opened = time.monotonic()
        # ...and the header read timeout closes every one of them.
        still_open = [s for s in stalled
                      if not _closed_by_server(s, max(0.1, opened + header_s + 3 - time.monotonic()))]
        assert not still_open, f"{len(still_open)} of {len(stalled)} stalled connections still open"
        # Waiting for a next request is no stall: the idle timeout (60s) applies, not this one.
        idle.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        assert idle.recv(4096).startswith(b"HTTP/1.1 200"), "idle keep-alive connection kept"
    finally:
        for s in stalled + [idle]:
            s.close()

    # Stalled connections held during the drain: exit still comes at the end of the drain period.
    stalled = _stall(srv.base_url, STALLED)
    try:
        srv.proc.send_signal(signal.SIGTERM)
        took = _stop_watch(srv.proc)
        assert srv.proc.returncode == 0, srv.log_tail()
        assert took < DRAIN_S + EXIT_SLACK_S, f"exit {took:.2f}s after SIGTERM with stalled clients"
    finally:
        for s in stalled:
            s.close()


# ------------------------------------------------------------------ database outage


class Proxy:
    """A TCP proxy to PostgreSQL that can be cut (listener closed, connections reset) and restored
    on the same port: the database "goes away" for this server only."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        self.listener: socket.socket | None = None
        self.up()

    def up(self) -> None:
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", self.port))
        ls.listen(64)
        self.listener = ls
        threading.Thread(target=self._accept, args=(ls,), daemon=True).start()

    def down(self) -> None:
        ls, self.listener = self.listener, None
        ls.close()
        with self.lock:
            conns, self.conns = self.conns, []
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()

    def _accept(self, ls: socket.socket) -> None:
        while True:
            try:
                client, _ = ls.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self.lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@pytest.fixture
def pg_database():
    """A fresh PostgreSQL database (the suite's server, or the Rust tests' one), dropped after."""
    base = os.environ.get("TESSERA_INTEROP_DATABASE_URL") or os.environ.get("TESSERA_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("needs PostgreSQL (TESSERA_INTEROP_DATABASE_URL or TESSERA_TEST_POSTGRES_URL)")
    name = "tessera_down_" + secrets.token_hex(6)
    subprocess.run(["psql", base, "-qAtc", f"CREATE DATABASE {name}"], check=True,
                   capture_output=True, timeout=30)
    yield urlsplit(base), name
    subprocess.run(["psql", base, "-qAtc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"],
                   capture_output=True, timeout=30)


def test_database_outage_is_503_fast_and_recovers(tmp_path, pg_database):
    base, name = pg_database
    proxy = Proxy((base.hostname or "127.0.0.1", base.port or 5432))
    netloc = base.netloc.rsplit("@", 1)
    via_proxy = (netloc[0] + "@" if len(netloc) == 2 else "") + f"127.0.0.1:{proxy.port}"
    url = urlunsplit(base._replace(netloc=via_proxy, path="/" + name))
    srv = _start_server(tmp_path, {"TESSERA_DATABASE_URL": url, "TESSERA_DRAIN_SECS": "1"})
    try:
        u = create_user(make_admin(srv, DEFAULT_REALM))
        token_url = f"{srv.issuer(DEFAULT_REALM)}/protocol/openid-connect/token"
        login = {"grant_type": "password", "client_id": DEFAULT_CLIENT, "username": u.username,
                 "password": u.password}
        assert requests.post(token_url, data=login, timeout=30).status_code == 200

        proxy.down()
        for _ in range(3):
            t = time.monotonic()
            r = requests.get(f"{srv.base_url}/health/ready", timeout=5)
            took = time.monotonic() - t
            assert r.status_code == 503, r.text
            assert took < 1.5, f"readiness took {took:.2f}s with the database down (rule: 1s)"
        assert r.headers.get("Retry-After"), r.headers

        r = requests.post(token_url, data=login, timeout=30)
        assert r.status_code == 503, (r.status_code, r.text)
        assert r.json()["error"] == "temporarily_unavailable", r.text
        assert int(r.headers["Retry-After"]) > 0, r.headers
        assert r.headers.get("Cache-Control") == "no-store"

        proxy.up()
        deadline = time.monotonic() + 20
        while requests.get(f"{srv.base_url}/health/ready", timeout=5).status_code != 200:
            assert time.monotonic() < deadline, "readiness did not recover after the database came back"
            time.sleep(0.2)
        r = requests.post(token_url, data=login, timeout=30)
        assert r.status_code == 200, r.text
    finally:
        if proxy.listener is None:
            proxy.up()
        srv.proc.send_signal(signal.SIGTERM)
        srv.proc.wait(timeout=15)
    assert u.password not in srv.log_tail(200_000)
