#!/usr/bin/env python3
"""Restart-to-ready for bench/run.sh: start a server command N times (one at a
time, on the data it already has) and time from spawn to the first 200 from
READY_URL, polling every 2 ms; stop it with SIGTERM after each start.
Standard library only.

Usage: python3 ready_timing.py N READY_URL LOG -- COMMAND [ARGS...]
Prints one line: "READY_MS <median> <min> <max> <each ms, comma-separated>".
"""
import http.client
import signal
import statistics
import subprocess
import sys
import time
from urllib.parse import urlsplit


def ready(host: str, port: int, path: str) -> bool:
    conn = http.client.HTTPConnection(host, port, timeout=1)
    try:
        conn.request("GET", path)
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def main() -> int:
    sep = sys.argv.index("--")
    n, url, log = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    cmd = sys.argv[sep + 1:]
    u = urlsplit(url)
    times = []
    with open(log, "ab") as out:
        for _ in range(n):
            t0 = time.monotonic()
            proc = subprocess.Popen(cmd, stdout=out, stderr=out)
            try:
                while not ready(u.hostname, u.port, u.path):
                    if proc.poll() is not None:
                        print(f"server exited with {proc.returncode} before ready; see {log}",
                              file=sys.stderr)
                        return 1
                    if time.monotonic() - t0 > 60:
                        print(f"not ready within 60 s; see {log}", file=sys.stderr)
                        return 1
                    time.sleep(0.002)
                times.append((time.monotonic() - t0) * 1000)
            finally:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    print("READY_MS %.1f %.1f %.1f %s" % (statistics.median(times), min(times), max(times),
                                          ",".join("%.1f" % t for t in times)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
