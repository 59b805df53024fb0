"""Developer tools that use Tessera without glue code, each the real program:

- Prometheus' own Python client parses `/metrics` in the classic text format (0.0.4) and in
  OpenMetrics, whichever the `Accept` header asks for;
- git (with `git http-backend` behind a small server that takes only a valid Tessera access
  token as the password) clones through `tessera credential`;
- kubectl calls a small API server (https) through a kubeconfig `exec` entry running
  `tessera sectoken get --output exec-credential`, in both exec API versions.

The small servers check a token by asking Tessera's userinfo endpoint, as a resource server
would."""

from __future__ import annotations

import base64
import http.server
import json
import os
import shutil
import ssl
import subprocess
import threading
from pathlib import Path

import pytest
import requests
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_classic

from conftest import REPO, make_admin

REALM = "devtools"
CLIENT = "devtools-cli"
USER = "grace"
PASSWORD = "Grace-pw-8d1k2"
# Absolute: kubectl resolves a relative exec command against the kubeconfig's directory.
BIN = str(Path(os.environ.get("TESSERA_BIN", REPO / "target" / "debug" / "tessera")).resolve())


def families(parse, text: str) -> dict:
    return {f.name: f for f in parse(text)}


def test_metrics_in_the_format_the_scraper_asks_for(server):
    requests.get(f"{server.base_url}/health/live", timeout=10)
    classic = requests.get(f"{server.base_url}/metrics", timeout=10,
                           headers={"Accept": "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"})
    assert classic.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    fams = families(parse_classic, classic.text)
    # The classic parser names a counter family without `_total`; its samples keep it.
    requests_family = fams["http_requests"]
    assert requests_family.type == "counter"
    assert any(s.name == "http_requests_total" and s.labels["route"] == "/health/live"
               for s in requests_family.samples)
    latency = fams["http_request_duration_seconds"]
    assert latency.type == "histogram"
    assert any(s.name == "http_request_duration_seconds_bucket" and s.labels["le"] == "+Inf"
               for s in latency.samples)

    # What Prometheus sends by default: OpenMetrics first.
    om = requests.get(f"{server.base_url}/metrics", timeout=10, headers={
        "Accept": "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
                  "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"})
    assert om.headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    fams = families(parse_openmetrics, om.text)
    assert fams["http_requests"].type == "counter"
    assert any(s.name == "http_requests_total" for s in fams["http_requests"].samples)
    assert fams["http_request_duration_seconds"].type == "histogram"

    # No Accept at all: the classic format, as Prometheus' client libraries answer.
    bare = requests.get(f"{server.base_url}/metrics", timeout=10, headers={"Accept": None})
    assert bare.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "# EOF" not in bare.text


@pytest.fixture(scope="module")
def realm(server, admin):
    admin.create_realm(payload={"realm": REALM, "enabled": True})
    ra = make_admin(server, REALM)
    ra.create_client(payload={"clientId": CLIENT, "publicClient": True, "enabled": True,
                              "directAccessGrantsEnabled": True})
    ra.create_user(payload={"username": USER, "email": "grace@example.com", "enabled": True,
                            "credentials": [{"type": "password", "value": PASSWORD, "temporary": False}]})
    yield
    admin.delete_realm(REALM)


@pytest.fixture
def signed_in(tmp_path, server, realm) -> dict:
    """A CLI home with connection `dev`, signed in with the file keychain: later commands name
    no keychain (git and kubectl know none); the connection remembers it."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")},
           "TESSERA_CLI_HOME": str(tmp_path / "cli"), "NO_COLOR": "1",
           "HOME": str(tmp_path), "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0"}
    run = lambda *a, **kw: subprocess.run([BIN, *a], env=env, capture_output=True, text=True,
                                          timeout=60, **kw)
    added = run("connections", "add", "--id", "dev", "--url", server.base_url, "--realm", REALM,
                "--client-id", CLIENT, "--username", USER, stdin=subprocess.DEVNULL)
    assert added.returncode == 0, added.stderr
    login = run("login", "--conn", "dev", "--password-stdin", "--insecure-keyring", input=PASSWORD + "\n")
    assert login.returncode == 0, login.stderr
    return env


class TokenChecker:
    """Asks Tessera's userinfo whether a token is valid; remembers who the valid ones were."""

    def __init__(self, server):
        self.userinfo = f"{server.issuer(REALM)}/protocol/openid-connect/userinfo"
        self.seen: list[str] = []

    def who(self, token: str) -> str | None:
        r = requests.get(self.userinfo, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        if r.status_code != 200:
            return None
        name = r.json()["preferred_username"]
        self.seen.append(name)
        return name


def serve(handler_class, tls: tuple[Path, Path] | None = None) -> tuple[http.server.ThreadingHTTPServer, str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler_class)
    scheme = "http"
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
        scheme = "https"
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"{scheme}://127.0.0.1:{httpd.server_address[1]}"


def self_signed(dir: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key (openssl)."""
    cert, key = dir / "cert.pem", dir / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


def git_server(root: Path, checker: TokenChecker):
    """Smart HTTP through `git http-backend` (CGI), behind Basic auth whose password must be a
    valid Tessera access token."""
    backend = subprocess.run(["git", "--exec-path"], capture_output=True, text=True,
                             check=True).stdout.strip() + "/git-http-backend"

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _refuse(self):
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _handle(self):
            auth = self.headers.get("Authorization", "")
            if not auth.startswith("Basic "):
                return self._refuse()
            _, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            if checker.who(password) is None:
                return self._refuse()
            path, _, query = self.path.partition("?")
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            env = {"GIT_PROJECT_ROOT": str(root), "GIT_HTTP_EXPORT_ALL": "1", "PATH_INFO": path,
                   "QUERY_STRING": query, "REQUEST_METHOD": self.command,
                   "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                   "CONTENT_LENGTH": str(len(body)), "REMOTE_USER": "git",
                   "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""), "PATH": os.environ["PATH"]}
            out = subprocess.run([backend], input=body, env=env, capture_output=True, check=True).stdout
            head, _, payload = out.partition(b"\r\n\r\n")
            status = 200
            headers = []
            for line in head.decode().split("\r\n"):
                name, _, value = line.partition(":")
                if name.lower() == "status":
                    status = int(value.split()[0])
                else:
                    headers.append((name, value.strip()))
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = _handle
        do_POST = _handle

    return serve(Handler)


def test_git_clones_through_the_credential_helper(server, signed_in, tmp_path):
    if shutil.which("git") is None:
        pytest.fail("git is not installed (.ci/run installs it)")
    env = signed_in
    git = lambda *a, cwd=None: subprocess.run(["git", *a], env=env, cwd=cwd, capture_output=True,
                                              text=True, timeout=60)
    root = tmp_path / "repos"
    work = tmp_path / "work"
    assert git("init", "-q", "--bare", str(root / "team.git")).returncode == 0
    assert git("init", "-q", str(work)).returncode == 0
    (work / "README").write_text("hello from tessera\n")
    for args in (["add", "README"], ["-c", "user.name=t", "-c", "user.email=t@example.com",
                                     "commit", "-qm", "first"],
                 ["push", "-q", str(root / "team.git"), "HEAD:refs/heads/main"]):
        done = git(*args, cwd=work)
        assert done.returncode == 0, done.stderr
    checker = TokenChecker(server)
    httpd, url = git_server(root, checker)
    try:
        # No helper: git cannot authenticate.
        bare = git("clone", "-q", f"{url}/team.git", str(tmp_path / "nohelper"))
        assert bare.returncode != 0
        # As docs/cli.md configures it: other helpers reset for this URL, then `!tessera ...`
        # found on PATH.
        env["PATH"] = f"{Path(BIN).resolve().parent}:{env['PATH']}"
        assert git("config", "--global", f"credential.{url}.helper", "").returncode == 0
        assert git("config", "--global", "--add", f"credential.{url}.helper",
                   "!tessera credential --conn dev").returncode == 0
        cloned = git("clone", "-q", "-b", "main", f"{url}/team.git", str(tmp_path / "clone"))
        assert cloned.returncode == 0, cloned.stderr
        assert (tmp_path / "clone" / "README").read_text() == "hello from tessera\n"
        assert checker.seen and set(checker.seen) == {USER}
    finally:
        httpd.shutdown()


def api_server(checker: TokenChecker, tls: tuple[Path, Path]):
    """Answers every GET with who the bearer token belongs to; 401 without a valid one."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            auth = self.headers.get("Authorization", "")
            who = checker.who(auth[7:]) if auth.startswith("Bearer ") else None
            body = json.dumps({"user": who} if who else
                              {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                               "message": "Unauthorized", "reason": "Unauthorized", "code": 401}).encode()
            self.send_response(200 if who else 401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return serve(Handler, tls)


@pytest.mark.parametrize("api_version", ["client.authentication.k8s.io/v1",
                                         "client.authentication.k8s.io/v1beta1"])
def test_kubectl_calls_an_api_server_through_the_exec_plugin(server, signed_in, tmp_path, api_version):
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl is not installed (.ci/run installs Debian's kubernetes-client)")
    version = json.loads(subprocess.run([kubectl, "version", "--client", "-o", "json"], capture_output=True,
                                        text=True, check=True).stdout)["clientVersion"]
    if api_version.endswith("/v1") and int(version["minor"].rstrip("+")) < 22:
        pytest.skip(f"kubectl 1.{version['minor']} predates the v1 exec API (1.22)")
    checker = TokenChecker(server)
    # Over https: client-go sends no exec-plugin credential over plain http.
    cert, key = self_signed(tmp_path)
    httpd, url = api_server(checker, (cert, key))
    kubeconfig = tmp_path / "kubeconfig"
    # JSON is YAML: no YAML library needed.
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "t",
        "clusters": [{"name": "t", "cluster": {
            "server": url,
            "certificate-authority-data": base64.b64encode(cert.read_bytes()).decode()}}],
        "contexts": [{"name": "t", "context": {"cluster": "t", "user": "dev"}}],
        "users": [{"name": "dev", "user": {"exec": {
            "apiVersion": api_version, "command": BIN,
            "args": ["sectoken", "get", "--conn", "dev", "--output", "exec-credential"],
            "env": [{"name": "TESSERA_CLI_HOME", "value": signed_in["TESSERA_CLI_HOME"]}],
            **({"interactiveMode": "Never"} if api_version.endswith("/v1") else {})}}}],
    }))
    try:
        env = {**signed_in, "KUBECONFIG": str(kubeconfig)}
        done = subprocess.run([kubectl, "get", "--raw", "/whoami"], env=env, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {"user": USER}
        assert checker.seen and set(checker.seen) == {USER}
    finally:
        httpd.shutdown()
