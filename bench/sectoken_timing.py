#!/usr/bin/env python3
"""How long `tessera sectoken get` takes an IDE: served from the keychain cache, and when every
call must refresh (the realm's access tokens live 30 s, the CLI's freshness margin).

Starts the server binary (TESSERA_BIN, default target/release/tessera) like login_timing.py,
creates realm `timing` (5-minute tokens) and realm `short` (30-second tokens) with a public
client and a user, adds one connection per realm in a temporary CLI home, logs in with
--password-stdin, then runs N sequential `sectoken get` per case (each a new process, as an IDE
calls it). KEYRING selects the store (keyutils, the default here, or file). Standard library only.
"""

import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import login_timing as lt  # noqa: E402  (server start, admin setup, machine facts)

N = int(os.environ.get("N", "50"))
KEYRING = os.environ.get("KEYRING", "keyutils")


def admin_post(base, token, path, doc):
    status, body = lt.request(base + path, data=json.dumps(doc).encode(), method="POST",
                              headers={"Authorization": "Bearer " + token,
                                       "Content-Type": "application/json"})
    if not 200 <= status < 300:
        raise lt.SetupError(f"{path}: HTTP {status} {body[:200]!r}")


def main():
    admin_pw = secrets.token_urlsafe(24)
    keyring = ["--insecure-keyring"] if KEYRING == "file" else ["--keyring", KEYRING]
    with tempfile.TemporaryDirectory(prefix="tessera-sectoken-") as tmp:
        with open(os.path.join(tmp, "tessera.log"), "wb") as log:
            proc, base = lt.start_server(os.path.join(tmp, "data"), lt.free_port(), admin_pw, log)
            try:
                lt.setup(base, admin_pw)
                status, body = lt.token_request(base, "master", {
                    "grant_type": "password", "client_id": "admin-cli",
                    "username": "admin", "password": admin_pw})
                token = json.loads(body)["access_token"]
                admin_post(base, token, "/admin/realms", {"realm": "short", "enabled": True,
                                                          "accessTokenLifespan": 30})
                admin_post(base, token, "/admin/realms/short/clients",
                           {"clientId": lt.CLIENT, "publicClient": True, "directAccessGrantsEnabled": True})
                admin_post(base, token, "/admin/realms/short/users", {
                    "username": lt.USER, "enabled": True,
                    "credentials": [{"type": "password", "value": lt.USER_PW, "temporary": False}]})
                env = {**{k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")},
                       "TESSERA_CLI_HOME": os.path.join(tmp, "cli")}
                conn = f"b{os.getpid()}"
                rows = []
                for name, realm in (("cached", lt.REALM), ("refresh every call", "short")):
                    cid = f"{conn}-{realm}"
                    subprocess.run([lt.BIN, "connections", "add", "--id", cid, "--url", base, "--realm", realm,
                                    "--client-id", lt.CLIENT, "--username", lt.USER], env=env, check=True,
                                   capture_output=True)
                    subprocess.run([lt.BIN, "login", "--conn", cid, "--password-stdin", *keyring], env=env,
                                   input=lt.USER_PW.encode(), check=True, capture_output=True)
                    xs = []
                    for _ in range(N):
                        t0 = time.perf_counter()
                        r = subprocess.run([lt.BIN, "sectoken", "get", "--conn", cid, *keyring], env=env,
                                           capture_output=True)
                        xs.append((time.perf_counter() - t0) * 1000)
                        if r.returncode != 0:
                            raise lt.SetupError(f"sectoken get failed: {r.stderr!r}")
                    rows.append((name, xs))
            finally:
                lt.stop_server(proc)
    print(f"## sectoken get latency ({KEYRING} keychain)")
    print()
    print(f"- command: `KEYRING={KEYRING} N={N} TESSERA_BIN={lt.BIN} python3 bench/sectoken_timing.py`")
    print(f"- machine: {os.cpu_count()} CPUs (nproc), {lt.cpu_model()}; server and CLI on the same machine")
    print(f"- Tessera {lt.build_commit()}; each call a new process, sequential")
    print()
    print("| case | n | median | p90 |")
    print("| --- | ---: | ---: | ---: |")
    for name, xs in rows:
        print(f"| {name} | {len(xs)} | {statistics.median(xs):.1f} ms | {lt.pct(xs, 90):.1f} ms |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
