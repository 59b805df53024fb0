#!/usr/bin/env python3
"""Login timing: unknown username vs known username with a wrong password, at the password
grant (MODE=grant, the default) or at the browser login page (MODE=page).

If "no such user" answered faster than "wrong password", an attacker could enumerate
usernames by timing the token endpoint. Tessera verifies unknown users against a dummy
argon2id hash of the same cost; this script measures whether that holds end to end.

Starts target/release/tessera (override with TESSERA_BIN) on a free 127.0.0.1 port with a
temp data dir, creates realm `timing`, public client `cli` and user `alice` through the Admin
REST API, then sends sequential, interleaved password-grant requests:

    A  alice / wrong password        -> 401 invalid_grant "Invalid user credentials"
    B  nobody-<i> / wrong password   -> 401 invalid_grant "Invalid user credentials"
    C  alice / right password        -> 200 (reference only)

Prints median/p10/p90/mean per kind, the A-B difference of medians with a bootstrap 95%
interval, and a Mann-Whitney U test. Exits 1 only if a response was not the expected one
(never because of timing), 2 if the server could not be set up.

With MODE=page the same three kinds are form posts to the login page of the authorization
endpoint (client `web`, code + PKCE), carrying the page's CSRF cookie and token: A and B must
answer 401 with the one generic message, C a 302 to the client with a code.

Environment: N (requests per kind, default 300), WARMUP (per kind, default 20),
BOOT (bootstrap resamples, default 2000), SEED (default 1), MODE (grant|page), TESSERA_BIN.
Standard library only.
"""

import http.client
import json
import math
import re
import os
import platform
import random
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timezone

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("TESSERA_BIN", os.path.join(REPO, "target", "release", "tessera"))
N = int(os.environ.get("N", "300"))
WARMUP = int(os.environ.get("WARMUP", "20"))
BOOT = int(os.environ.get("BOOT", "2000"))
SEED = int(os.environ.get("SEED", "1"))
MODE = os.environ.get("MODE", "grant")
PAGE_ERROR = b"Invalid username or password."
CALLBACK = "http://127.0.0.1:9/cb"
MAX_FAILURES = "1000000"

REALM = "timing"
CLIENT = "cli"
USER, USER_PW = "alice", "alice-pw"
WRONG_PW = "wrong-password"
EXPECTED_401 = {"error": "invalid_grant", "error_description": "Invalid user credentials"}


class SetupError(Exception):
    pass


def request(url, data=None, headers=None, method=None, timeout=30):
    """(status, body bytes); HTTP errors are answers, not exceptions."""
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        body = e.read()
        e.close()
        return e.code, body


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sh(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO).stdout.strip()
    except OSError:
        return ""


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return f.read().split()[0]
    except OSError:
        return "n/a"


def build_commit():
    """HEAD, marked dirty when tracked files outside bench/ changed, and whether
    the binary is older than HEAD's commit (then it may not be HEAD's code)."""
    rev = sh("git", "rev-parse", "--short", "HEAD") or "unknown"
    if sh("git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench"):
        rev += " + uncommitted changes"
    built = datetime.fromtimestamp(os.path.getmtime(BIN), timezone.utc)
    rev += f", binary built {built:%Y-%m-%d %H:%M} UTC"
    committed = sh("git", "log", "-1", "--format=%ct")
    if committed.isdigit() and os.path.getmtime(BIN) < int(committed):
        rev += " (older than HEAD's commit: may not be HEAD's code)"
    return rev


def start_server(data_dir, port, admin_pw, log, extra_env=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}
    env.update(
        TESSERA_BOOTSTRAP_ADMIN_PASSWORD=admin_pw,
        TESSERA_LOGIN_MAX_FAILURES=MAX_FAILURES,
        TESSERA_LOGIN_ADDRESS_MAX_FAILURES=MAX_FAILURES,
        RUST_LOG="warn",
    )
    env.update(extra_env or {})
    base = f"http://127.0.0.1:{port}"
    cmd = [BIN, "serve", "--data-dir", data_dir, "--listen", f"127.0.0.1:{port}",
           "--public-url", base]
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SetupError(f"tessera exited with status {proc.returncode} before it was ready")
        try:
            if request(base + "/health/ready", timeout=2)[0] == 200:
                return proc, base
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise SetupError("tessera not ready within 60 s")


def stop_server(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def token_request(base, realm, form):
    return request(
        f"{base}/realms/{realm}/protocol/openid-connect/token",
        data=urllib.parse.urlencode(form).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )


def setup(base, admin_pw):
    status, body = token_request(base, "master", {
        "grant_type": "password", "client_id": "admin-cli",
        "username": "admin", "password": admin_pw,
    })
    if status != 200:
        raise SetupError(f"admin token: HTTP {status} {body[:200]!r}")
    auth = {"Authorization": "Bearer " + json.loads(body)["access_token"],
            "Content-Type": "application/json"}
    for what, path, doc in [
        ("realm", "/admin/realms", {"realm": REALM, "enabled": True}),
        ("client", f"/admin/realms/{REALM}/clients",
         {"clientId": CLIENT, "publicClient": True, "directAccessGrantsEnabled": True}),
        ("web client", f"/admin/realms/{REALM}/clients",
         {"clientId": "web", "publicClient": True, "redirectUris": [CALLBACK]}),
        ("user", f"/admin/realms/{REALM}/users",
         {"username": USER, "enabled": True,
          "credentials": [{"type": "password", "value": USER_PW, "temporary": False}]}),
    ]:
        status, body = request(base + path, data=json.dumps(doc).encode(), headers=auth,
                               method="POST")
        if not 200 <= status < 300:
            raise SetupError(f"create {what}: HTTP {status} {body[:200]!r}")


class LoginPage:
    """One login page, fetched once: its CSRF cookie, token and sealed login state stay
    valid for every post (the state for 30 minutes)."""

    def __init__(self, base):
        self.host, self.port = base.split("//", 1)[1].split(":")
        q = urllib.parse.urlencode({
            "client_id": "web", "redirect_uri": CALLBACK, "response_type": "code",
            "scope": "openid", "state": "s", "code_challenge_method": "S256",
            "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"})
        self.path = f"/realms/{REALM}/protocol/openid-connect/auth"
        status, headers, body = self.send("GET", f"{self.path}?{q}", None, {})
        if status != 200:
            raise SetupError(f"login page: HTTP {status}")
        cookie = headers.get("set-cookie", "").split(";", 1)[0]
        html = body.decode()
        field = lambda name: re.search(rf'name="{name}" value="([^"]*)"', html).group(1)
        self.cookie, self.csrf, self.state = cookie, field("csrf"), field("login_state")

    def send(self, method, path, body, headers):
        conn = http.client.HTTPConnection(self.host, int(self.port), timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers)
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            conn.close()

    def post(self, form):
        body = urllib.parse.urlencode({"csrf": self.csrf, "login_state": self.state,
                                       "username": form["username"],
                                       "password": form["password"]}).encode()
        status, headers, body = self.send("POST", self.path, body, {
            "Content-Type": "application/x-www-form-urlencoded", "Cookie": self.cookie})
        return status, headers.get("location", "").encode() if status == 302 else body


def kinds(counter):
    """kind -> (form, check(status, body) -> None if as expected, else a short reason)."""

    def expect_401(status, body):
        if MODE == "page":
            return None if status == 401 and PAGE_ERROR in body else f"HTTP {status}"
        if status != 401:
            return f"HTTP {status}"
        try:
            doc = json.loads(body)
        except ValueError:
            return "401 with a non-JSON body"
        if {k: doc.get(k) for k in EXPECTED_401} != EXPECTED_401:
            return f"401 {doc.get('error')!r} {doc.get('error_description')!r}"
        return None

    def expect_200(status, body):
        if MODE == "page":
            return None if status == 302 and b"code=" in body else f"HTTP {status}"
        if status != 200:
            return f"HTTP {status}"
        try:
            ok = "access_token" in json.loads(body)
        except ValueError:
            ok = False
        return None if ok else "200 without access_token"

    def form(username, password):
        return {"grant_type": "password", "client_id": CLIENT,
                "username": username, "password": password}

    def unknown():
        counter[0] += 1
        return form(f"nobody-{counter[0]}", WRONG_PW)

    return {
        "A": (lambda: form(USER, WRONG_PW), expect_401),
        "B": (unknown, expect_401),
        "C": (lambda: form(USER, USER_PW), expect_200),
    }


def run(base, order, plan, times, unexpected, page=None):
    for kind in order:
        make_form, check = plan[kind]
        form = make_form()
        t0 = time.perf_counter()
        try:
            if page is not None:
                status, body = page.post(form)
            else:
                status, body = token_request(base, REALM, form)
        except (urllib.error.URLError, OSError) as e:
            status, body = None, str(e).encode()
        elapsed = time.perf_counter() - t0
        reason = f"transport error: {body.decode(errors='replace')}" if status is None \
            else check(status, body)
        if reason:
            unexpected.setdefault((kind, reason), 0)
            unexpected[(kind, reason)] += 1
        elif times is not None:
            times[kind].append(elapsed * 1000.0)


def schedule(n, rng):
    """n rounds of A, B, C, each round in a fresh random order, so drift and
    "what ran just before" (e.g. C's session write) hit every kind alike."""
    order = []
    for _ in range(n):
        r = ["A", "B", "C"]
        rng.shuffle(r)
        order += r
    return order


def pct(xs, p):
    """Percentile with linear interpolation (p in 0..100)."""
    s = sorted(xs)
    k = (len(s) - 1) * p / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def bootstrap_median_diff(a, b, rounds, rng):
    diffs = sorted(
        statistics.median(rng.choices(a, k=len(a))) - statistics.median(rng.choices(b, k=len(b)))
        for _ in range(rounds)
    )
    return pct(diffs, 2.5), pct(diffs, 97.5)


def mann_whitney(a, b):
    """U statistic for a and two-sided p (normal approximation, tie-corrected)."""
    pooled = sorted([(x, 0) for x in a] + [(x, 1) for x in b])
    ranks, ties, i = [0.0] * len(pooled), 0.0, 0
    while i < len(pooled):
        j = i
        while j + 1 < len(pooled) and pooled[j + 1][0] == pooled[i][0]:
            j += 1
        for k in range(i, j + 1):
            ranks[k] = (i + j) / 2.0 + 1
        t = j - i + 1
        ties += t ** 3 - t
        i = j + 1
    n1, n2 = len(a), len(b)
    r1 = sum(r for r, (_, g) in zip(ranks, pooled) if g == 0)
    u = r1 - n1 * (n1 + 1) / 2.0
    n = n1 + n2
    var = n1 * n2 / 12.0 * ((n + 1) - ties / (n * (n - 1)))
    z = (u - n1 * n2 / 2.0) / math.sqrt(var) if var > 0 else 0.0
    return u, math.erfc(abs(z) / math.sqrt(2))


def main():
    if not os.access(BIN, os.X_OK):
        print(f"error: {BIN} not found or not executable "
              "(cargo build --release -p tessera-cli, or set TESSERA_BIN)", file=sys.stderr)
        return 2
    rng = random.Random(SEED)
    admin_pw = secrets.token_urlsafe(24)
    started = datetime.now(timezone.utc)
    load_before = loadavg()
    times = {"A": [], "B": [], "C": []}
    unexpected, warm_unexpected = {}, {}
    with tempfile.TemporaryDirectory(prefix="tessera-timing-") as tmp:
        data_dir = os.path.join(tmp, "data")
        log_path = os.path.join(tmp, "tessera.log")
        proc = None
        with open(log_path, "wb") as log:
            try:
                proc, base = start_server(data_dir, free_port(), admin_pw, log)
                setup(base, admin_pw)
                counter = [0]
                plan = kinds(counter)
                page = LoginPage(base) if MODE == "page" else None
                run(base, schedule(WARMUP, rng), plan, None, warm_unexpected, page)
                t0 = time.monotonic()
                run(base, schedule(N, rng), plan, times, unexpected, page)
                wall = time.monotonic() - t0
            except SetupError as e:
                print(f"error: {e}", file=sys.stderr)
                if proc is not None:
                    stop_server(proc)
                with open(log_path, errors="replace") as f:
                    sys.stderr.write("--- tessera log ---\n" + f.read())
                return 2
            finally:
                if proc is not None:
                    stop_server(proc)

    a, b, c = times["A"], times["B"], times["C"]
    what = "login page" if MODE == "page" else "password grant"
    print(f"## {started:%Y-%m-%d %H:%M} UTC {what} timing: unknown user vs wrong password")
    print()
    print(f"- command: `MODE={MODE} N={N} python3 bench/login_timing.py`")
    print(f"- machine: {os.cpu_count()} CPUs (nproc), {platform.machine()}, {cpu_model()}; "
          "client on the same machine")
    print(f"- Tessera {build_commit()} (release build, SQLite store in a temp dir, RUST_LOG=warn), "
          "password hashing at its production default (argon2id 19 MiB, t=2, p=1; "
          "no TESSERA_PASSWORD_* set)")
    print(f"- TESSERA_LOGIN_MAX_FAILURES=TESSERA_LOGIN_ADDRESS_MAX_FAILURES={MAX_FAILURES} so the failed-login throttle never "
          "locks alice during the measurement (production default: 5 per 60 s)")
    print(f"- load: {N} rounds after {WARMUP} warm-up rounds, each round one request of A, B and C "
          f"in random order (seed {SEED}), sequential, one new HTTP/1.1 connection per request, "
          f"POST form to 127.0.0.1; {wall:.1f} s measured; 1-min load average before/after: "
          f"{load_before}/{loadavg()}")
    ok = "302 with a code" if MODE == "page" else "200"
    print("- A: `alice` + wrong password (401); B: `nobody-<i>` (new unknown user each time) "
          f"+ wrong password (401); C: `alice` + right password ({ok}, reference)")
    print()
    print("| kind | n | median | p10 | p90 | mean |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    labels = {"A": "A known user, wrong password", "B": "B unknown user",
              "C": "C known user, right password"}
    for kind in "ABC":
        xs = times[kind]
        if not xs:
            print(f"| {labels[kind]} | 0 | - | - | - | - |")
            continue
        print(f"| {labels[kind]} | {len(xs)} | {statistics.median(xs):.2f} ms | "
              f"{pct(xs, 10):.2f} ms | {pct(xs, 90):.2f} ms | {statistics.fmean(xs):.2f} ms |")
    print()
    if a and b:
        ma, mb = statistics.median(a), statistics.median(b)
        lo, hi = bootstrap_median_diff(a, b, BOOT, rng)
        u, p = mann_whitney(a, b)
        within = lo <= 0 <= hi
        print(f"- median A - B: {ma - mb:+.3f} ms ({(ma - mb) / ma * 100:+.2f} % of A); "
              f"bootstrap 95% interval ({BOOT} resamples, seed {SEED}): "
              f"[{lo:+.3f}, {hi:+.3f}] ms")
        print(f"- Mann-Whitney U = {u:.0f}, two-sided p = {p:.3f} (normal approximation)")
        print("- verdict: " + (
            "the interval contains 0: no difference between unknown user and wrong password "
            f"is detectable at this sample size (resolution about {max(-lo, hi):.2f} ms)"
            if within else
            "the interval excludes 0: unknown user and wrong password differ beyond noise"))
    total_unexpected = sum(unexpected.values()) + sum(warm_unexpected.values())
    print(f"- unexpected responses: {total_unexpected}" + ("" if not total_unexpected else ": " + "; ".join(
        f"{k} {r} x{c}" + (" (warm-up)" if d is warm_unexpected else "")
        for d in (warm_unexpected, unexpected) for (k, r), c in sorted(d.items()))))
    return 1 if total_unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
