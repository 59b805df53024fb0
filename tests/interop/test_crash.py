"""Crash test: kill -9 under refresh load, restart, and nothing a client received is lost.

A server of its own (its own data dir; on PostgreSQL its own database) gets a realm, a
confidential client and a user through the Admin REST API. CHAINS clients (threads) each hold one
refresh-token chain from a password grant and rotate it as fast as they can (refresh_token
grant), keeping every refresh token they received in a 200. After SECONDS of that the server gets
SIGKILL while requests are in flight (those get connection errors: their answers were never
received, so they promise nothing), and is started again on the same data dir / database, the
same port and the same master key. Then, for every chain:

- the last refresh token the client received rotates again (200): the commit that created it was
  durable before the client saw it;
- the token spent just before it, the first one of the round and a few more of its past ones are
  refused with invalid_grant: no rotation the client saw was rolled back.

The request in flight at the kill presented the last token, and the server may have committed
that rotation before it died without the answer reaching the client. That must not cost the client
its chain: a spent token presented again within the reuse grace window gets the same successor
back while the successor is unused (crates/oauth/src/rotation.rs), so the last token still answers
200, and presenting it once more answers the same successor again. The grace is set to its
largest, a minute, so that presenting this round's spent tokens never ends a session (reuse
detection): keep SECONDS well under it.

This repeats for ROUNDS kill/restart cycles; each chain must have rotated at least a few times in
each round (the load did work). No assertion on speed.

Environment (TESSERA_INTEROP_* because the server refuses TESSERA_* variables it does not know,
and the suite keeps those away from it):
  TESSERA_INTEROP_CRASH_SECONDS  load before each kill (default 2)
  TESSERA_INTEROP_CRASH_CHAINS   concurrent refresh chains (default 8)
  TESSERA_INTEROP_CRASH_ROUNDS   kill/restart cycles (default 3)
"""

from __future__ import annotations

import dataclasses
import os
import random
import secrets
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

from conftest import (READY_TIMEOUT_S, REPO, Server, _SERVERS, _free_port, _stop_server, create_user,
                      make_admin, own_database)

SECONDS = float(os.environ.get("TESSERA_INTEROP_CRASH_SECONDS", "2"))
CHAINS = int(os.environ.get("TESSERA_INTEROP_CRASH_CHAINS", "8"))
ROUNDS = int(os.environ.get("TESSERA_INTEROP_CRASH_ROUNDS", "3"))
MIN_ROTATIONS = 3  # per chain and round, before the kill
REALM = "crash"
CLIENT_ID = "crash-app"

if os.environ.get("TESSERA_INTEROP_BASE_URL"):
    pytest.skip("kills and restarts a server it starts itself", allow_module_level=True)


class Restartable:
    """`tessera serve` on one data dir (and database), port and admin password across restarts;
    each start logs to its own file."""

    def __init__(self, tmp_dir: Path, database: str | None):
        self.tmp_dir = tmp_dir
        self.binary = Path(os.environ.get("TESSERA_BIN", REPO / "target" / "debug" / "tessera"))
        if not self.binary.is_file():
            pytest.fail(f"Tessera binary not found at {self.binary} (build it or set TESSERA_BIN)",
                        pytrace=False)
        self.data_dir = tmp_dir / "data"
        self.data_dir.mkdir()
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.admin_password = "Adm-" + secrets.token_urlsafe(18)
        env = {k: v for k, v in os.environ.items()
               if k not in ("TESSERA_BIN", "TESSERA_DATABASE_URL") and not k.startswith("TESSERA_INTEROP_")}
        env["TESSERA_BOOTSTRAP_ADMIN_PASSWORD"] = self.admin_password
        # Spent tokens come back on purpose here; they must be refused without ending sessions.
        env["TESSERA_REFRESH_REUSE_GRACE_MS"] = "60000"
        env.setdefault("NO_COLOR", "1")
        if database:
            env["TESSERA_DATABASE_URL"] = database
        self.env = env
        self.starts = 0
        self.current: Server | None = None

    def start(self) -> Server:
        self.starts += 1
        log_path = self.tmp_dir / f"server-{self.starts}.log"
        cmd = [str(self.binary), "serve", "--data-dir", str(self.data_dir),
               "--listen", f"127.0.0.1:{self.port}", "--public-url", self.base_url]
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(cmd, env=self.env, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT)
        srv = Server(base_url=self.base_url, admin_password=self.admin_password, proc=proc,
                     log_path=log_path)
        _SERVERS.append(srv)  # its log is shown if the session fails
        self.current = srv
        deadline = time.monotonic() + READY_TIMEOUT_S
        last = "no response yet"
        while True:
            code = proc.poll()
            if code is not None:
                pytest.fail(f"tessera (start {self.starts}) exited with code {code} before becoming "
                            f"ready\n--- server output ---\n{srv.log_tail()}", pytrace=False)
            try:
                r = requests.get(f"{self.base_url}/health/ready", timeout=2)
                if r.status_code == 200:
                    return srv
                last = f"HTTP {r.status_code}: {r.text[:200]}"
            except requests.RequestException as e:
                last = repr(e)
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"tessera (start {self.starts}) not ready after {READY_TIMEOUT_S:.0f}s "
                            f"(last: {last})\n--- server output ---\n{srv.log_tail()}", pytrace=False)
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no shutdown hook, no flush, no goodbye."""
        if self.current is not None and self.current.proc.poll() is None:
            self.current.proc.send_signal(signal.SIGKILL)
            self.current.proc.wait()


@dataclasses.dataclass
class Chain:
    tokens: list[str]  # every refresh token received in a 200, oldest first
    round_start: int = 0  # index in tokens of the round's first token
    rotations: int = 0  # 200s this round
    unanswered: str | None = None  # the token the request without an answer presented
    ended_at: float = 0.0  # when that request failed (time.monotonic)
    failure: str | None = None  # an answer other than 200 under load


def test_refresh_tokens_a_client_received_survive_kill_9(request, tmp_path):
    server = Restartable(tmp_path, own_database(request))
    srv = server.start()
    token_url = f"{srv.issuer(REALM)}/protocol/openid-connect/token"
    try:
        admin = make_admin(srv)
        try:
            admin.create_realm(payload={"realm": REALM, "enabled": True})
        except TypeError:  # python-keycloak and a JSON body on the 201: see conftest's `demo`
            admin.get_realm(REALM)
        realm_admin = make_admin(srv, REALM)
        client_secret = "s-" + secrets.token_hex(16)
        realm_admin.create_client({"clientId": CLIENT_ID, "enabled": True, "publicClient": False,
                                   "secret": client_secret, "directAccessGrantsEnabled": True,
                                   "standardFlowEnabled": False})
        user = create_user(realm_admin, "crash")
        client = {"client_id": CLIENT_ID, "client_secret": client_secret}

        def new_chain() -> Chain:
            r = requests.post(token_url, timeout=60, data={
                "grant_type": "password", "username": user.username, "password": user.password,
                **client})
            assert r.status_code == 200, r.text
            return Chain(tokens=[r.json()["refresh_token"]])

        def refresh(token: str, session: requests.Session | None = None) -> requests.Response:
            return (session or requests).post(token_url, timeout=30, data={
                "grant_type": "refresh_token", "refresh_token": token, **client})

        def rotate_until_down(chain: Chain) -> None:
            with requests.Session() as s:
                while True:
                    token = chain.tokens[-1]
                    try:
                        r = refresh(token, s)
                        body = r.json() if r.status_code == 200 else None
                    except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):
                        # No (complete) answer: the server is gone.
                        chain.unanswered = token
                        chain.ended_at = time.monotonic()
                        return
                    except requests.RequestException as e:
                        chain.failure = f"{token[:8]}…: {e!r}"
                        return
                    if body is None:
                        chain.failure = f"{token[:8]}…: HTTP {r.status_code} {r.text[:300]}"
                        return
                    chain.tokens.append(body["refresh_token"])
                    chain.rotations += 1

        chains = [new_chain() for _ in range(CHAINS)]
        survived = 0
        for rnd in range(1, ROUNDS + 1):
            for c in chains:
                c.round_start, c.rotations, c.unanswered, c.failure = len(c.tokens) - 1, 0, None, None
            threads = [threading.Thread(target=rotate_until_down, args=(c,), daemon=True) for c in chains]
            for t in threads:
                t.start()
            time.sleep(SECONDS)
            killed_at = time.monotonic()
            server.kill()
            for t in threads:
                t.join(timeout=60)
            assert not any(t.is_alive() for t in threads), "a client still waits after the kill"

            for i, c in enumerate(chains):
                assert c.failure is None, f"round {rnd}, chain {i}: under load: {c.failure}"
                assert c.ended_at >= killed_at, (
                    f"round {rnd}, chain {i}: lost its connection before the kill")
                assert c.unanswered == c.tokens[-1]
                assert c.rotations >= MIN_ROTATIONS, (
                    f"round {rnd}, chain {i}: only {c.rotations} rotations before the kill")

            srv = server.start()
            for i, c in enumerate(chains):
                where = f"round {rnd}, chain {i} ({c.rotations} rotations before the kill)"
                last = c.tokens[-1]
                # Rotated now, or (if the unanswered request's rotation committed) its successor
                # handed out again: 200 either way.
                r = refresh(last)
                assert r.status_code == 200, (
                    f"{where}: the last refresh token the client received is lost: "
                    f"HTTP {r.status_code} {r.text[:300]}")
                successor = r.json()["refresh_token"]
                again = refresh(last)
                assert again.status_code == 200 and again.json()["refresh_token"] == successor, (
                    f"{where}: a retry of the last token got another successor: "
                    f"HTTP {again.status_code} {again.text[:300]}")
                survived += 1
                c.tokens.append(successor)
                # This round's tokens whose successor is now spent (older ones are past the grace
                # window, where presenting them would end the session: reuse detection).
                spent = c.tokens[c.round_start:-2]
                # No rotation the client saw was rolled back: what it spent stays spent (the one
                # spent last before the kill, the round's first, a few at random).
                probe = {spent[-1], c.tokens[c.round_start], *random.sample(spent, min(3, len(spent)))}
                for token in probe:
                    r = refresh(token)
                    assert r.status_code == 400 and r.json().get("error") == "invalid_grant", (
                        f"{where}: the spent refresh token #{c.tokens.index(token)} of "
                        f"{len(c.tokens)} was accepted again: HTTP {r.status_code} {r.text[:120]}")

        print(f"crash test: {ROUNDS} rounds x {CHAINS} chains: all {survived} last tokens answered "
              "after the restart")
    finally:
        if server.current is not None and server.current.proc.poll() is None:
            _stop_server(server.current)
        else:
            server.kill()
