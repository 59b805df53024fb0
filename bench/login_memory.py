#!/usr/bin/env python3
"""RSS of the server during and after a password-login load (issue 16, item 3).

For each binary in BINS (default: TESSERA_BIN or target/release/tessera) in turn: start it like
login_timing.py does (free 127.0.0.1 port, temp data dir, SQLite, RUST_LOG=warn, production
argon2id cost), create realm `timing`, public client `cli` and user `alice`, let it settle,
take the idle RSS, then run CONCURRENCY client threads sending password grants flat out for
LOAD_SECS (alternately alice's right password -> 200 and a wrong one -> 401), and keep
sampling for AFTER_SECS after the last response. VmRSS is read from /proc/PID/status every
100 ms throughout. Prints a markdown section: idle, peak, end-of-load and AFTER_SECS-after RSS
per binary, logins/s, and the two targets of issue 16:

    peak during load   <= idle + hashing workers x argon2 memory + 32 MiB
    RSS AFTER_SECS after the load <= 1.2 x idle

(hashing workers = WORKERS, default nproc, the server's default max_concurrent; argon2 memory =
19 MiB, the production default.)

Environment: BINS ("label=/path label2=/path2 ..."), CONCURRENCY (16), LOAD_SECS (30),
AFTER_SECS (10), SETTLE_SECS (3), WORKERS (nproc), CSV (write every sample to this file).
Exits 1 if a response was neither the expected 200/401 nor a 503 "busy", 2 on setup failure.
Standard library only.
"""

import json
import os
import secrets
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import login_timing as lt  # noqa: E402  (server start, setup, machine facts)

CONCURRENCY = int(os.environ.get("CONCURRENCY", "16"))
LOAD_SECS = float(os.environ.get("LOAD_SECS", "30"))
AFTER_SECS = float(os.environ.get("AFTER_SECS", "10"))
SETTLE_SECS = float(os.environ.get("SETTLE_SECS", "3"))
WORKERS = int(os.environ.get("WORKERS", str(os.cpu_count() or 2)))
ARGON2_MIB = 19
SLACK_MIB = 32
CSV = os.environ.get("CSV")


def bins():
    spec = os.environ.get("BINS")
    if not spec:
        return [("tessera", lt.BIN)]
    out = []
    for item in spec.split():
        label, _, path = item.partition("=")
        out.append((label, path) if path else (os.path.basename(label), label))
    return out


def rss_kib(pid, field="VmRSS"):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class Sampler(threading.Thread):
    """VmRSS every 100 ms: (seconds since start, KiB)."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.samples, self.stop = pid, [], threading.Event()
        self.t0 = time.monotonic()

    def run(self):
        while not self.stop.is_set():
            kib = rss_kib(self.pid)
            if kib is not None:
                self.samples.append((time.monotonic() - self.t0, kib))
            self.stop.wait(0.1)

    def between(self, a, b):
        return [k for t, k in self.samples if a <= t <= b]


def login_load(base, until, counts, lock):
    right = {"grant_type": "password", "client_id": lt.CLIENT, "username": lt.USER,
             "password": lt.USER_PW}
    wrong = dict(right, password=lt.WRONG_PW)
    i = 0
    while time.monotonic() < until:
        form = right if i % 2 == 0 else wrong
        i += 1
        try:
            status, body = lt.token_request(base, lt.REALM, form)
        except OSError as e:
            status, body = None, str(e).encode()
        if status == 200 and form is right and b"access_token" in body:
            key = "ok"
        elif status == 401 and form is wrong and b"invalid_grant" in body:
            key = "ok"
        elif status == 503 and b"temporarily_unavailable" in body:
            key = "busy"
        else:
            key = f"unexpected HTTP {status}"
        with lock:
            counts[key] = counts.get(key, 0) + 1


def measure(label, path):
    lt.BIN = path
    admin_pw = secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory(prefix="tessera-mem-") as tmp:
        with open(os.path.join(tmp, "tessera.log"), "wb") as log:
            proc = None
            try:
                proc, base = lt.start_server(os.path.join(tmp, "data"), lt.free_port(),
                                             admin_pw, log)
                lt.setup(base, admin_pw)
                sampler = Sampler(proc.pid)
                sampler.start()
                time.sleep(SETTLE_SECS)
                idle_from = sampler.samples[-1][0] if sampler.samples else 0.0
                time.sleep(1.0)
                idle = sampler.between(idle_from, idle_from + 1.0)
                counts, lock = {}, threading.Lock()
                load_start = time.monotonic() - sampler.t0
                until = time.monotonic() + LOAD_SECS
                threads = [threading.Thread(target=login_load, args=(base, until, counts, lock))
                           for _ in range(CONCURRENCY)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                load_end = time.monotonic() - sampler.t0
                time.sleep(AFTER_SECS)
                hwm = rss_kib(proc.pid, "VmHWM")
                sampler.stop.set()
                sampler.join()
            finally:
                if proc is not None:
                    lt.stop_server(proc)
    during = sampler.between(load_start, load_end)
    after = sampler.between(load_end + AFTER_SECS - 0.5, load_end + AFTER_SECS + 1)
    idle_kib = sorted(idle)[len(idle) // 2]
    if CSV:
        with open(CSV, "a") as f:
            for t, k in sampler.samples:
                f.write(f"{label},{t - load_start:.2f},{k}\n")
    return {
        "label": label, "path": path, "idle": idle_kib, "peak": max(during),
        "end": during[-1], "after": after[-1] if after else sampler.samples[-1][1],
        "hwm": hwm, "counts": counts, "secs": load_end - load_start,
    }


def mib(kib):
    return f"{kib / 1024:.1f}"


def main():
    targets = bins()
    for _, path in targets:
        if not os.access(path, os.X_OK):
            print(f"error: {path} not found or not executable", file=sys.stderr)
            return 2
    started = datetime.now(timezone.utc)
    results = []
    for label, path in targets:
        try:
            results.append(measure(label, path))
        except lt.SetupError as e:
            print(f"error: {label}: {e}", file=sys.stderr)
            return 2
    print(f"## {started:%Y-%m-%d %H:%M} UTC RSS during and after a password-login load")
    print()
    spec = " ".join(f"{label}={path}" for label, path in targets)
    print(f"- command: `BINS=\"{spec}\" CONCURRENCY={CONCURRENCY} LOAD_SECS={LOAD_SECS:g} "
          f"AFTER_SECS={AFTER_SECS:g} python3 bench/login_memory.py`")
    print(f"- machine: {os.cpu_count()} CPUs (nproc), {lt.cpu_model()}; client on the same machine; "
          f"checkout {lt.sh('git', 'rev-parse', '--short', 'HEAD')}")
    print(f"- load: {CONCURRENCY} threads, password grants flat out for {LOAD_SECS:g} s (alternately "
          "right password -> 200 and wrong -> 401, one connection each), argon2id at the production "
          f"default (19 MiB, t=2, p=1); VmRSS from /proc every 100 ms; idle = median over 1 s after "
          f"{SETTLE_SECS:g} s settling (after the realm, client and user were created)")
    print(f"- targets: peak <= idle + {WORKERS} hashing workers x {ARGON2_MIB} MiB + {SLACK_MIB} MiB; "
          f"RSS {AFTER_SECS:g} s after the load <= 1.2 x idle")
    print()
    print("| binary | idle MiB | peak MiB | end of load MiB | "
          f"{AFTER_SECS:g} s after MiB | VmHWM MiB | logins/s | peak target | after target |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |")
    bad = 0
    for r in results:
        bound = r["idle"] + (WORKERS * ARGON2_MIB + SLACK_MIB) * 1024
        ok = r["counts"].get("ok", 0)
        bad += sum(v for k, v in r["counts"].items() if k.startswith("unexpected"))
        peak_ok = "met" if r["peak"] <= bound else f"missed (bound {mib(bound)})"
        after_ok = "met" if r["after"] <= 1.2 * r["idle"] else \
            f"missed (bound {mib(1.2 * r['idle'])})"
        print(f"| {r['label']} | {mib(r['idle'])} | {mib(r['peak'])} | {mib(r['end'])} | "
              f"{mib(r['after'])} | {mib(r['hwm'])} | {ok / r['secs']:.1f} | {peak_ok} | "
              f"{after_ok} |")
    print()
    for r in results:
        others = {k: v for k, v in r["counts"].items() if k != "ok"}
        print(f"- {r['label']}: {r['counts'].get('ok', 0)} expected responses"
              + (", " + ", ".join(f"{k}: {v}" for k, v in sorted(others.items()))
                 if others else "") + f" (`{r['path']}`)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
