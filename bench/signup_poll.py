#!/usr/bin/env python3
"""What SSO sign-up polling costs the server: `GET /no-auth/check-signup` for a sign-up whose
provider round trip has not completed (the answer every waiting IDE gets every second or two).

Starts the server binary (TESSERA_BIN, default target/release/tessera) like login_timing.py with
a config file declaring one `oauth2` provider (it is never contacted: starting a sign-up only
builds the authorize URL), creates the public client `ide` (sign-up enabled) in the default realm, starts one
sign-up per simulated client, then measures N sequential polls (latency) and CLIENTS threads
polling their own sign-ups as fast as they can for SECONDS (throughput). Standard library only.
"""

import http.client
import json
import os
import secrets
import statistics
import sys
import tempfile
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import login_timing as lt  # noqa: E402  (server start, machine facts)

N = int(os.environ.get("N", "2000"))
CLIENTS = int(os.environ.get("CLIENTS", "16"))
SECONDS = float(os.environ.get("SECONDS", "10"))

CONFIG = """
runtime_environment = "bench"
[providers.upstream]
kind = "oauth2"
client_id = "tessera"
client_secret_env = "UPSTREAM_SECRET"
authorize_url = "https://upstream.invalid/authorize"
token_url = "https://upstream.invalid/token"
userinfo_url = "https://upstream.invalid/user"
"""


def get(conn, path):
    t0 = time.perf_counter()
    conn.request("GET", path)
    resp = conn.getresponse()
    body = resp.read()
    return resp.status, body, time.perf_counter() - t0


def main():
    admin_pw = secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory(prefix="tessera-signup-") as tmp:
        config = os.path.join(tmp, "tessera.toml")
        with open(config, "w") as f:
            f.write(CONFIG)
        env = {"TESSERA_CONFIG": config, "UPSTREAM_SECRET": "s"}
        with open(os.path.join(tmp, "tessera.log"), "wb") as log:
            port = lt.free_port()
            proc, base = lt.start_server(os.path.join(tmp, "data"), port, admin_pw, log, env)
            try:
                _, body = lt.token_request(base, "master", {
                    "grant_type": "password", "client_id": "admin-cli",
                    "username": "admin", "password": admin_pw})
                token = json.loads(body)["access_token"]
                status, body = lt.request(
                    base + "/admin/realms/tessera/clients",
                    data=json.dumps({"clientId": "ide", "publicClient": True,
                                     "attributes": {"tessera.signup.enabled": "true"}}).encode(),
                    method="POST", headers={"Authorization": "Bearer " + token,
                                            "Content-Type": "application/json"})
                assert status == 201, (status, body)
                signups = []
                for _ in range(CLIENTS):
                    t = str(uuid.uuid4())
                    conn = http.client.HTTPConnection("127.0.0.1", port)
                    status, _, _ = get(conn, f"/web/provider-auth/upstream?signupToken={t}&client_id=ide")
                    assert status == 302, status
                    signups.append(t)
                conn = http.client.HTTPConnection("127.0.0.1", port)
                path = f"/no-auth/check-signup?token={signups[0]}"
                for _ in range(50):
                    get(conn, path)
                lat = []
                for _ in range(N):
                    status, body, dt = get(conn, path)
                    assert status == 202 and b"signup_pending" in body, (status, body)
                    lat.append(dt * 1000)
                counts, bad = [0] * CLIENTS, [0]
                stop = time.monotonic() + SECONDS

                def poll(i):
                    c = http.client.HTTPConnection("127.0.0.1", port)
                    p = f"/no-auth/check-signup?token={signups[i]}"
                    while time.monotonic() < stop:
                        status, _, _ = get(c, p)
                        counts[i] += 1
                        if status != 202:
                            bad[0] += 1

                threads = [threading.Thread(target=poll, args=(i,)) for i in range(CLIENTS)]
                for th in threads:
                    th.start()
                for th in threads:
                    th.join()
            finally:
                lt.stop_server(proc)
    lat.sort()
    total = sum(counts)
    print(f"## check-signup polling ({time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC)")
    print()
    print(f"- command: `N={N} CLIENTS={CLIENTS} SECONDS={SECONDS:g} TESSERA_BIN={lt.BIN} "
          "python3 bench/signup_poll.py`")
    print(f"- machine: {os.cpu_count()} CPUs, {lt.cpu_model()}; client on the same machine; "
          f"Tessera {lt.build_commit()}, SQLite in a temp dir, RUST_LOG=warn")
    print(f"- sequential, one keep-alive connection: median {statistics.median(lat):.2f} ms, "
          f"p90 {lt.pct(lat, 90):.2f} ms, p99 {lt.pct(lat, 99):.2f} ms over {N} polls")
    print(f"- {CLIENTS} clients polling their own pending sign-ups flat out for {SECONDS:g} s: "
          f"{total / SECONDS:.0f} polls/s, {bad[0]} non-202 answers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
