"""Connecting third-party accounts: Tessera as the OAuth client of an upstream provider nobody
here wrote, npm oidc-provider 9.13.3 (js/upstream.mjs), signed in through its own pages by a
scripted browser (requests.Session + the forms of the pages).

Tessera is configured (TESSERA_CONFIG) with the upstream twice: `acme` as OpenID Connect
(discovery, ID token) and `plain` as generic OAuth 2 (fixed endpoints, userinfo fields,
`trust_email = true`). Connections and sign-ups live in the default realm (`tessera`).

No URL says *who* connects: the browser's own sign-in does, on Tessera's confirmation page
(`/realms/tessera/account/connect/{p}`, the login page first), and nothing leaves for the
provider before the person presses Continue there.

- connect: an IDE asks for a one-time link with its bearer token (`POST /web/provider-auth/{p}`),
  the user's browser opens it, signs in, confirms, goes through the provider and back to
  `/no-auth/provider-token/{p}`; or a plain `GET /web/provider-auth/{p}` leads to the same page.
  The user's sockets hear `providerConnected` with the upstream access token, `/api/oauth/token`
  returns the same token, the database holds no plaintext token, the account API lists and
  deletes the connection, and deleting revokes the token at the provider;
- headless Chromium (playwright-core, js/browser_flows.mjs): the account page's "Connected
  accounts" card (Connect, the provider's pages, Disconnect; no Content-Security-Policy
  violation), an IDE's link opened in the browser (login page, the confirmation page's
  Continue button), and a sign-up confirmed with the page's Sign in button;
- sign-up by an anonymous browser polled through `/no-auth/check-signup`: after the provider the
  browser gets a confirmation page whose code the poll shows too; only Sign in there releases
  tokens, Cancel denies them; an existing account is found by email only with `trust_email`;
  no self-service flow reaches an administrator's account;
- the Che OAuth API (`/api/oauth/...`): authenticate goes through the same confirmation page;
  a token that expired and cannot be refreshed answers 409 `reconnect_required`;
- two deployments (environments): a connect started on B whose callback reaches A is sent on to
  B; `/relay/{env}/...` forwards requests;
- errors (bad, replayed, foreign or denied states; failed code exchange; foreign redirect
  targets; links in the URL, links for another account or replayed; sign-up clients that may
  not sign up) are 4xx pages that redirect nowhere and store nothing.

These tests start their own Tessera servers (and skip against an external server).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import re
import secrets
import select
import subprocess
import threading
import time
import uuid
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit, urlunsplit

import pytest
import requests
import socketio

from conftest import DEFAULT_REALM as REALM
from conftest import (Server, _free_port, _start_server, _stop_server, create_user, make_admin,
                      own_database, password_login)
from helpers import claims

HERE = Path(__file__).resolve().parent
JS = HERE / "js"
UPSTREAM_CLIENT = "tessera"
CHE_ORIGIN = "http://localhost:3001"  # a dashboard origin allowed for redirect_after_login
SCOPES = ["openid", "email", "profile"]
SIGNUP_APP = "Acme IDE"  # the name of the client sign-ups deliver tokens to
SHORT_LIVED = "short"  # upstream logins starting with this get 3-second access tokens
TIMEOUT = 30
SHOTS = Path(os.environ.get("TESSERA_INTEROP_OUT", HERE / "out")) / "screenshots"

if os.environ.get("TESSERA_INTEROP_BASE_URL"):
    pytest.skip("the connect tests configure and start their own Tessera servers",
                allow_module_level=True)


# ---------------------------------------------------------------- the upstream provider


class Upstream:
    """js/upstream.mjs (oidc-provider) on a free loopback port."""

    def __init__(self, tmp_dir: Path, redirect_uris: list[str]):
        self.client_secret = "up-" + secrets.token_hex(16)
        self.log_path = tmp_dir / "upstream.log"
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            ["node", str(JS / "upstream.mjs"), json.dumps({
                "port": 0, "clientId": UPSTREAM_CLIENT, "clientSecret": self.client_secret,
                "redirectUris": redirect_uris})],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log)
        log.close()
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline() if ready else b""
        if not line:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"upstream.mjs did not start:\n{self.log_tail()}", pytrace=False)
        self.issuer = json.loads(line)["issuer"]
        self.discovery = requests.get(f"{self.issuer}/.well-known/openid-configuration",
                                      timeout=TIMEOUT).json()

    def log_tail(self, limit: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-limit:] if self.log_path.exists() else ""

    def userinfo(self, access_token: str) -> requests.Response:
        return requests.get(self.discovery["userinfo_endpoint"], timeout=TIMEOUT,
                            headers={"Authorization": f"Bearer {access_token}"})

    def issued(self, account: str, kind: str) -> list[str]:
        """Opaque tokens of `kind` (AccessToken, RefreshToken) the provider issued to `account`."""
        r = requests.get(f"{self.issuer}/test/tokens", timeout=TIMEOUT)
        assert r.status_code == 200, r.text
        return [t["value"] for t in r.json() if t["accountId"] == account and t["kind"] == kind]

    def revoke(self, token: str) -> None:
        """RFC 7009 revocation at the provider, as its client (Tessera) would do it."""
        r = requests.post(self.discovery["revocation_endpoint"], timeout=TIMEOUT,
                          auth=(UPSTREAM_CLIENT, self.client_secret),
                          data={"token": token, "token_type_hint": "refresh_token"})
        assert r.status_code == 200, r.text

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class _Page(HTMLParser):
    """The forms (action, method, inputs, buttons by id), links, and the text of every element
    with an id, of an HTML page."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}

    def __init__(self, html: str):
        super().__init__()
        self.forms: list[dict] = []
        self.links: list[str] = []
        self._text: dict[str, str] = {}
        self._open: list[tuple[str, str | None]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.forms.append({"action": a.get("action") or "", "method": (a.get("method") or "get").upper(),
                               "inputs": {}, "buttons": {}})
        elif tag == "input" and self.forms and a.get("name"):
            self.forms[-1]["inputs"][a["name"]] = a.get("value") or ""
        elif tag == "button" and self.forms and a.get("id"):
            self.forms[-1]["buttons"][a["id"]] = (a.get("name"), a.get("value") or "")
        elif tag == "a" and a.get("href"):
            self.links.append(a["href"])
        if tag not in self.VOID:
            self._open.append((tag, a.get("id")))
            if a.get("id"):
                self._text.setdefault(a["id"], "")

    def handle_endtag(self, tag):
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i][0] == tag:
                del self._open[i:]
                break

    def handle_data(self, data):
        for _, element in self._open:
            if element:
                self._text[element] += data

    def text(self, element_id: str) -> str:
        """The text of the element with this id, whitespace collapsed."""
        assert element_id in self._text, f"no #{element_id} on the page"
        return " ".join(self._text[element_id].split())


def provider_login(session: requests.Session, authorize_url: str, login: str, callback_prefix: str,
                   *, password: str = "any-password", deny: bool = False, max_steps: int = 12) -> str:
    """Sign in at the upstream provider as `login` the way a browser would: follow its redirects
    by hand, fill in the login form, then the consent form (or, with `deny`, press Cancel).
    Returns the URL the provider redirects to once it starts with `callback_prefix`, without
    requesting it (that request is the caller's: it is the one Tessera answers)."""
    provider_origin = _origin(authorize_url)
    method, url, data = "GET", authorize_url, None
    trail = []
    for _ in range(max_steps):
        r = session.request(method, url, data=data, allow_redirects=False, timeout=TIMEOUT)
        trail.append(f"{method} {url} -> {r.status_code}")
        if r.status_code in (301, 302, 303, 307, 308):
            location = urljoin(r.url, r.headers["Location"])
            if location.startswith(callback_prefix):
                return location
            assert _origin(location) == provider_origin, (
                f"the provider redirected elsewhere than {callback_prefix}: {location}\n" + "\n".join(trail))
            method, url, data = "GET", location, None
            continue
        assert r.status_code == 200, f"{r.text[:1000]}\n" + "\n".join(trail)
        page = _Page(r.text)
        if deny:
            cancel = [href for href in page.links if "/abort" in href]
            assert cancel, f"no Cancel link on the provider's page:\n{r.text[:2000]}"
            method, url, data = "GET", urljoin(r.url, cancel[0]), None
            continue
        assert page.forms, f"no form on the provider's page:\n{r.text[:2000]}"
        form = page.forms[0]
        data = dict(form["inputs"])
        if "login" in data:
            data["login"] = login
        if "password" in data:
            data["password"] = password
        method, url = form["method"], urljoin(r.url, form["action"])
    raise AssertionError("no redirect to the callback after %d steps:\n%s" % (max_steps, "\n".join(trail)))


# ---------------------------------------------------------------- Tessera servers


def _origin(url: str) -> str:
    u = urlsplit(url)
    return f"{u.scheme}://{u.netloc}"


def _toml(value) -> str:
    return json.dumps(value)  # JSON strings and arrays of strings are TOML too


def tessera_config(*, env: str, upstream: Upstream, secret_file: Path,
                   environments: dict[str, str] | None = None, auth_origin: str | None = None,
                   success_url: str | None = None) -> str:
    up = upstream.discovery
    lines = [
        f"runtime_environment = {_toml(env)}",
        f"oauth_redirect_origins = {_toml([CHE_ORIGIN])}",
    ]
    if auth_origin:
        lines.append(f"auth_origin = {_toml(auth_origin)}")
    if success_url:
        lines.append(f"connect_success_url = {_toml(success_url)}")
    lines.append("[environments]")
    lines += [f"{name} = {_toml(url)}" for name, url in (environments or {}).items()]
    lines += [
        "[providers.acme]",
        'kind = "oidc"',
        f"issuer = {_toml(upstream.issuer)}",
        f"client_id = {_toml(UPSTREAM_CLIENT)}",
        'client_secret_env = "ACME_SECRET"',
        f"scopes = {_toml(SCOPES)}",
        "[providers.plain]",
        'kind = "oauth2"',
        f"authorize_url = {_toml(up['authorization_endpoint'])}",
        f"token_url = {_toml(up['token_endpoint'])}",
        f"userinfo_url = {_toml(up['userinfo_endpoint'])}",
        f"revocation_url = {_toml(up['revocation_endpoint'])}",
        f"client_id = {_toml(UPSTREAM_CLIENT)}",
        f"client_secret_file = {_toml(str(secret_file))}",
        f"scopes = {_toml(SCOPES)}",
        'subject_field = "sub"',
        'email_field = "email"',
        'email_verified_field = "email_verified"',
        # Keycloak's "Trust Email": a sign-up may find an account by the email plain verified.
        "trust_email = true",
    ]
    return "\n".join(lines) + "\n"


def start_tessera(request, tmp_dir: Path, port: int, config: str, upstream: Upstream) -> Server:
    (tmp_dir / "tessera.toml").write_text(config)
    env = {"TESSERA_CONFIG": str(tmp_dir / "tessera.toml"), "ACME_SECRET": upstream.client_secret}
    # Each deployment of these tests gets its own database: environments are separate
    # deployments, and the suite's other servers must not see these nodes.
    own = own_database(request)
    if own:
        env["TESSERA_DATABASE_URL"] = own
    srv = _start_server(tmp_dir, env, port=port)
    srv.database_url = own
    return srv


def callback_url(srv_or_origin, provider: str) -> str:
    base = srv_or_origin if isinstance(srv_or_origin, str) else srv_or_origin.base_url
    return f"{base}/no-auth/provider-token/{provider}"


@dataclasses.dataclass
class World:
    tessera: Server
    upstream: Upstream
    admin: object  # KeycloakAdmin on the default realm of `tessera`
    signup_client: str  # a public client of the default realm with provider sign-up enabled
    env: str  # its runtime_environment


def signup_client(admin) -> tuple[str, str]:
    """A public client of the default realm that may receive sign-ups' tokens: (clientId, id)."""
    client_id = "connect-app-" + uuid.uuid4().hex[:6]
    return client_id, admin.create_client(payload={
        "clientId": client_id, "name": SIGNUP_APP, "enabled": True, "publicClient": True,
        "standardFlowEnabled": True, "directAccessGrantsEnabled": True,
        "redirectUris": [f"{CHE_ORIGIN}/*"], "attributes": {"tessera.signup.enabled": "true"}})


@pytest.fixture(scope="module")
def world(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("connect")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    upstream = Upstream(tmp, [callback_url(base, "acme"), callback_url(base, "plain"),
                              f"{base}/api/oauth/callback"])
    secret_file = tmp / "plain.secret"
    secret_file.write_text(upstream.client_secret)
    srv = None
    try:
        srv = start_tessera(request, tmp, port,
                            tessera_config(env="main", upstream=upstream, secret_file=secret_file),
                            upstream)
        admin = make_admin(srv, REALM)
        client_id, client_uuid = signup_client(admin)
        yield World(srv, upstream, admin, client_id, "main")
        admin.delete_client(client_uuid)
    finally:
        if srv is not None:
            _stop_server(srv)
        upstream.stop()


@dataclasses.dataclass
class User:
    id: str
    username: str
    password: str
    token: str  # access token of the default realm (its tessera-cli client), as an IDE holds it
    # The user's browser: Tessera's sign-in cookie, and the cookie binding each provider round
    # trip to the browser that started it (start and callback go through one cookie jar).
    browser: requests.Session = dataclasses.field(default_factory=requests.Session)


def new_user(srv: Server, admin, **rep) -> User:
    u = create_user(admin, "conn", **rep)
    return User(u.id, u.username, u.password, password_login(srv, u.username, u.password)["access_token"])


@pytest.fixture
def user(world):
    u = new_user(world.tessera, world.admin)
    yield u
    world.admin.delete_user(u.id)


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def query(url: str) -> dict:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


def with_query(url: str, **params) -> str:
    u = urlsplit(url)
    q = query(url)
    q.update(params)
    return urlunsplit((u.scheme, u.netloc, u.path, urlencode(q), ""))


# ---------------------------------------------------------------- Tessera's pages, scripted


def is_login_page(r: requests.Response) -> bool:
    return r.status_code == 200 and 'id="kc-login"' in r.text


def press(browser: requests.Session, page: requests.Response, button: str) -> requests.Response:
    """Click the button with id `button` on `page`: its form's fields and the button's name=value
    go to the form's action; the answer is not followed."""
    for form in _Page(page.text).forms:
        if button in form["buttons"]:
            name, value = form["buttons"][button]
            data = {**form["inputs"], **({name: value} if name else {})}
            return browser.request(form["method"], urljoin(page.url, form["action"]), data=data,
                                   allow_redirects=False, timeout=TIMEOUT)
    raise AssertionError(f"no button #{button} on {page.url}:\n{page.text[:1500]}")


def open_signed_in(user: User, url: str) -> requests.Response:
    """GET `url` in the user's browser; if Tessera shows its login page first, sign in there as
    the user (the form posts back to the page, which answers 303 to itself) and open it again."""
    r = user.browser.get(url, allow_redirects=False, timeout=TIMEOUT)
    if not is_login_page(r):
        return r
    form = _Page(r.text).forms[0]
    data = {**form["inputs"], "username": user.username, "password": user.password}
    done = user.browser.post(urljoin(r.url, form["action"]), data=data, allow_redirects=False,
                             timeout=TIMEOUT)
    assert done.status_code == 303, f"{done.status_code} {done.text[:500]}"
    assert urljoin(done.url, done.headers["Location"]) == url, done.headers["Location"]
    r = user.browser.get(url, allow_redirects=False, timeout=TIMEOUT)
    assert not is_login_page(r), "still the login page after signing in"
    return r


def connect_link(srv: Server, user: User, provider: str) -> str:
    """What an IDE does with its bearer token: asks for a one-time link to open in a browser."""
    r = requests.post(f"{srv.base_url}/web/provider-auth/{provider}", headers=bearer(user.token),
                      timeout=TIMEOUT)
    assert r.status_code == 200, f"{r.status_code} {r.text[:500]}"
    body = r.json()
    assert body["expires_in"] == 300, body
    assert body["url"].startswith(f"{srv.issuer(REALM)}/account/connect/{provider}?link="), body
    return body["url"]


def confirm_connect(user: User, url: str, provider: str) -> str:
    """Open a connect confirmation page in the user's browser (signing in first if asked), check
    it names the provider and the user, press Continue; returns the provider's authorize URL
    Tessera sends the browser to (with the round trip's binding cookie set)."""
    page = open_signed_in(user, url)
    assert page.status_code == 200, f"{page.status_code} {page.text[:800]}"
    shown = _Page(page.text)
    assert shown.text("connect-provider") == provider, page.text[:1500]
    assert shown.text("connect-username") == user.username, page.text[:1500]
    r = press(user.browser, page, "connect-confirm")
    assert r.status_code == 303, f"{r.status_code} {r.text[:800]}"
    assert any(c.name.startswith("tessera_provider_") for c in user.browser.cookies), "binding cookie"
    return r.headers["Location"]


def start_connect(srv: Server, provider: str, user: User, *, via: str = "link") -> str:
    """Start connecting `provider` for `user`; returns the provider authorize URL. `link`: as an
    IDE does (a link made for its bearer token, opened in the user's browser); `page`: a plain
    GET /web/provider-auth/{provider}, which leads to the same confirmation page."""
    if via == "link":
        url = connect_link(srv, user, provider)
    else:
        r = user.browser.get(f"{srv.base_url}/web/provider-auth/{provider}", allow_redirects=False,
                             timeout=TIMEOUT)
        assert r.status_code == 302, f"{r.status_code} {r.text[:500]}"
        url = urljoin(r.url, r.headers["Location"])
        assert url == f"{srv.issuer(REALM)}/account/connect/{provider}", url
    return confirm_connect(user, url, provider)


def finish_connect(srv: Server, user: User, callback: str, provider: str,
                   success_url: str | None = None) -> requests.Response | None:
    """Deliver the provider's redirect to Tessera in the user's browser; expect 302 to the success
    page (Tessera's own by default, then fetch it, or the configured connect_success_url)."""
    r = user.browser.get(callback, allow_redirects=False, timeout=TIMEOUT)
    assert r.status_code == 302, f"{r.status_code} {r.text[:1000]}"
    success = urljoin(callback, r.headers["Location"])
    if success_url:
        assert success == success_url, success
        return None
    assert success == f"{srv.base_url}/web/provider-connected/{provider}", success
    page = requests.get(success, allow_redirects=False, timeout=TIMEOUT)
    assert page.status_code == 200 and "text/html" in page.headers.get("content-type", ""), page.text[:500]
    return page


def account_providers(srv: Server, token: str) -> list[dict]:
    r = requests.get(f"{srv.issuer(REALM)}/account/providers", headers=bearer(token), timeout=TIMEOUT)
    assert r.status_code == 200, f"{r.status_code} {r.text[:500]}"
    return r.json()


def che_token(srv: Server, token: str, provider: str) -> requests.Response:
    return requests.get(f"{srv.base_url}/api/oauth/token", params={"oauth_provider": provider},
                        headers=bearer(token), timeout=TIMEOUT)


def assert_not_stored(srv: Server, *plaintexts: str) -> None:
    """No upstream token is stored in the clear (SQLite files, or provider_connections on
    PostgreSQL)."""
    assert plaintexts and all(plaintexts)
    url = getattr(srv, "database_url", None)
    if url:
        out = subprocess.run(["psql", url, "-Atc", "select * from provider_connections"],
                             capture_output=True, text=True, timeout=TIMEOUT)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip(), "provider_connections is empty"
        leaked = [p[:6] + "..." for p in plaintexts if p in out.stdout]
        assert not leaked, f"upstream tokens in provider_connections in the clear: {leaked}"
        return
    data = srv.log_path.parent / "data"
    files = [p for p in data.iterdir() if p.name.startswith("tessera.db")]
    assert data / "tessera.db" in files, sorted(p.name for p in data.iterdir())
    for f in files:
        blob = f.read_bytes()
        leaked = [p[:6] + "..." for p in plaintexts if p.encode() in blob]
        assert not leaked, f"upstream tokens in {f.name} in the clear: {leaked}"


def assert_ms_epoch_near(value, expected_s: float, slack_s: float = 300) -> None:
    assert isinstance(value, (int, float)) and not isinstance(value, bool), value
    assert abs(value / 1000 - expected_s) < slack_s, f"{value} is not a ms epoch near {expected_s:.0f}"


# ---------------------------------------------------------------- the me-channel


class SocketListener:
    """npm socket.io-client (js/socket_client.mjs) connected as a user, waiting for one event."""

    def __init__(self, srv: Server, token: str, until: str, timeout_s: float = 30):
        self.proc = subprocess.Popen(["node", str(JS / "socket_client.mjs")], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.proc.stdin.write(json.dumps({
            "url": srv.base_url, "token": token, "how": "handshake", "transports": ["websocket"],
            "until": until, "timeoutMs": int(timeout_s * 1000)}))
        self.proc.stdin.close()
        self.stderr: list[str] = []
        ready = threading.Event()

        def pump():
            for line in self.proc.stderr:
                self.stderr.append(line)
                if line.strip() == "ready":
                    ready.set()

        threading.Thread(target=pump, daemon=True).start()
        if not ready.wait(20):
            out = self.result()
            raise AssertionError(f"the socket did not authenticate: {out} {''.join(self.stderr)}")

    def result(self) -> dict:
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return json.loads(self.proc.stdout.read() or "{}")

    def event(self, name: str):
        out = self.result()
        got = [e[1] if len(e) > 1 else None for e in out.get("events", []) if e[0] == name]
        assert got, f"no {name!r} on the socket: {out}"
        return got[0]

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def listen():
    started: list[SocketListener] = []

    def make(srv, token, until="providerConnected"):
        started.append(SocketListener(srv, token, until))
        return started[-1]

    yield make
    for s in started:
        s.close()


class PyRecorder:
    """A python-socketio client recording every event (a second, independent socket client)."""

    def __init__(self, srv: Server, token: str):
        self.events: list[tuple[str, object]] = []
        self.sio = socketio.Client(reconnection=False)
        self.sio.on("*", lambda ev, data=None: self.events.append((ev, data)))
        self.sio.connect(srv.base_url, auth={"token": token}, transports=["websocket"], wait_timeout=10)
        assert self.sio.call("ping", {}, timeout=5)  # authenticated

    def wait_for(self, name: str, timeout: float = 10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for ev, data in self.events:
                if ev == name:
                    return data
            time.sleep(0.05)
        raise AssertionError(f"no {name!r} within {timeout}s; got {self.events}")

    def close(self):
        if self.sio.connected:
            self.sio.disconnect()


# ---------------------------------------------------------------- connect


def check_authorize_url(url: str, upstream: Upstream, redirect_uri: str, *, oidc: bool) -> dict:
    assert url.startswith(upstream.discovery["authorization_endpoint"] + "?"), url
    p = query(url)
    assert p["client_id"] == UPSTREAM_CLIENT and p["response_type"] == "code", p
    assert p["redirect_uri"] == redirect_uri, p
    assert set(SCOPES) <= set(p["scope"].split()), p
    assert p["code_challenge_method"] == "S256" and len(p["code_challenge"]) == 43, p
    assert len(p["state"]) >= 16, p
    if oidc:
        assert p.get("nonce"), p
    return p


def test_connect_oidc_provider(world, user, listen):
    srv, up = world.tessera, world.upstream
    login = "acme" + uuid.uuid4().hex[:8]
    sock = listen(srv, user.token)

    authorize = start_connect(srv, "acme", user)  # the IDE's link; the browser signs in, confirms
    p = check_authorize_url(authorize, up, callback_url(srv, "acme"), oidc=True)
    callback = provider_login(requests.Session(), authorize, login, p["redirect_uri"])
    cb = query(callback)
    assert cb["state"] == p["state"] and cb["code"], callback
    page = finish_connect(srv, user, callback, "acme")

    event = sock.event("providerConnected")
    assert event["provider"] == "acme", event
    access = event["accessToken"]
    assert access in up.issued(login, "AccessToken"), "the event carries the upstream's token"
    if event["expiresAt"] is not None:
        assert_ms_epoch_near(event["expiresAt"], time.time() + 3600)  # the upstream's 1 h
    assert access not in page.text and cb["code"] not in page.text
    me = up.userinfo(access)
    assert me.status_code == 200 and me.json()["sub"] == login

    r = che_token(srv, user.token, "acme")
    assert r.status_code == 200, r.text
    assert r.json()["token"] == access
    assert set(SCOPES) <= set(r.json()["scope"].replace(",", " ").split()), r.json()
    r = requests.get(f"{srv.base_url}/api/oauth/token", timeout=TIMEOUT,
                     params={"oauth_provider": "acme", "token": user.token})
    assert r.status_code == 200 and r.json()["token"] == access, r.text

    refresh = up.issued(login, "RefreshToken")
    assert refresh, "the upstream issued a refresh token"
    assert_not_stored(srv, access, *refresh)

    [conn] = [c for c in account_providers(srv, user.token) if c["provider"] == "acme"]
    assert conn["subject"] == login, conn
    assert set(SCOPES) <= set(conn["scopes"]), conn
    assert_ms_epoch_near(conn["connectedAt"], time.time())
    if conn["expiresAt"] is not None:
        assert_ms_epoch_near(conn["expiresAt"], time.time() + 3600)

    r = requests.delete(f"{srv.issuer(REALM)}/account/providers/acme", headers=bearer(user.token),
                        timeout=TIMEOUT)
    assert r.status_code == 204, r.text
    assert "acme" not in [c["provider"] for c in account_providers(srv, user.token)]
    assert up.userinfo(access).status_code == 401, "disconnecting revokes the token at the provider"
    assert 400 <= che_token(srv, user.token, "acme").status_code < 500
    r = requests.delete(f"{srv.issuer(REALM)}/account/providers/acme", headers=bearer(user.token),
                        timeout=TIMEOUT)
    assert r.status_code == 404, r.text


def test_connect_generic_oauth2_provider(world, user, listen):
    srv, up = world.tessera, world.upstream
    login = "plain" + uuid.uuid4().hex[:8]
    sock = listen(srv, user.token)  # npm socket.io-client ...
    rec = PyRecorder(srv, user.token)  # ... and python-socketio: every socket of the user hears it
    try:
        # A plain link (no token, no user in it): the confirmation page, after the login page.
        authorize = start_connect(srv, "plain", user, via="page")
        p = check_authorize_url(authorize, up, callback_url(srv, "plain"), oidc=False)
        callback = provider_login(requests.Session(), authorize, login, p["redirect_uri"])
        assert query(callback)["state"] == p["state"]
        page = finish_connect(srv, user, callback, "plain")
        event = sock.event("providerConnected")
        assert rec.wait_for("providerConnected") == event
    finally:
        rec.close()
    assert event["provider"] == "plain", event
    access = event["accessToken"]
    assert access not in page.text
    assert up.userinfo(access).status_code == 200
    assert che_token(srv, user.token, "plain").json()["token"] == access
    assert_not_stored(srv, access, *up.issued(login, "RefreshToken"))

    [conn] = [c for c in account_providers(srv, user.token) if c["provider"] == "plain"]
    assert conn["subject"] == login, conn  # subject_field = "sub" of the userinfo answer
    r = requests.delete(f"{srv.issuer(REALM)}/account/providers/plain", headers=bearer(user.token),
                        timeout=TIMEOUT)
    assert r.status_code == 204, r.text
    assert up.userinfo(access).status_code == 401, "revoked at revocation_url"
    assert account_providers(srv, user.token) == []


def test_connect_cancelled_on_the_confirmation_page(world, user):
    """Cancel on the confirmation page: nothing leaves for the provider, nothing is stored."""
    page = open_signed_in(user, connect_link(world.tessera, user, "acme"))
    r = press(user.browser, page, "connect-cancel")
    assert r.status_code == 200, f"{r.status_code} {r.text[:500]}"
    assert _Page(r.text).text("message-title") == "Nothing was connected", r.text[:800]
    assert not any(c.name.startswith("tessera_provider_") for c in user.browser.cookies)
    assert account_providers(world.tessera, user.token) == []


# ---------------------------------------------------------------- in a real browser (Chromium)


def browser_flow(flow: str, cfg: dict) -> dict:
    """One flow of js/browser_flows.mjs (headless Chromium through playwright-core)."""
    if not Path(os.environ.get("CHROMIUM", "/usr/bin/chromium")).exists():
        pytest.fail("Chromium is not installed (.ci/run installs Debian's chromium)", pytrace=False)
    p = subprocess.run(["node", str(JS / "browser_flows.mjs"), flow, json.dumps(cfg)],
                       capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, f"{flow}: {p.stderr}\n{p.stdout}"
    return json.loads(p.stdout)


def test_account_page_connects_and_disconnects(world, user):
    srv, up = world.tessera, world.upstream
    login = "page" + uuid.uuid4().hex[:8]
    account = f"{srv.issuer(REALM)}/account"
    success = f"{srv.base_url}/web/provider-connected/acme"
    shots = SHOTS / "account-connect"
    out = browser_flow("connect", {
        "username": user.username, "password": user.password, "screenshots": str(shots),
        "accountUrl": account, "provider": "acme", "upstreamIssuer": up.issuer,
        "upstreamLogin": login, "successUrl": success,
        "accountApi": f"{account}/providers", "token": user.token})
    assert out["csp"] == [], f"Content-Security-Policy violations: {out['csp']}"

    assert {"acme", "plain"} <= set(out["providers"]), out["providers"]
    assert "Not connected" in out["before"], out["before"]
    assert out["successUrl"] == success and "is connected" in out["successText"], out
    m = re.search(rf"Connected as {re.escape(login)} since (\d{{4}}-\d\d-\d\d \d\d:\d\d) UTC",
                  out["connected"])
    assert m, f"the acme row once connected: {out['connected']!r}"
    since = datetime.strptime(m[1], "%Y-%m-%d %H:%M").replace(tzinfo=timezone.utc)
    assert abs(since.timestamp() - time.time()) < 600, m[0]

    api = out["apiConnected"]
    assert api["status"] == 200, api
    [conn] = [c for c in json.loads(api["body"]) if c["provider"] == "acme"]
    assert conn["subject"] == login, conn
    access = up.issued(login, "AccessToken")
    assert access, "the provider issued an access token to Tessera"

    assert urlsplit(out["afterUrl"]).path == urlsplit(account).path, out["afterUrl"]
    assert out["notice"] == "The account was disconnected.", out["notice"]
    assert "Not connected" in out["disconnected"] and out["connectButton"] == 1, out["disconnected"]
    assert "acme" not in [c["provider"] for c in account_providers(srv, user.token)]
    assert all(up.userinfo(t).status_code == 401 for t in access), \
        "disconnecting revokes the token at the provider"
    for name in ("account-providers", "provider-login", "provider-consent", "provider-connected",
                 "account-connected", "account-disconnected"):
        assert (shots / f"{name}.png").stat().st_size > 1000, name


def test_ide_link_confirmed_in_chromium(world, user):
    """An IDE's link opened in Chromium: Tessera's login page, then the confirmation page naming
    the provider and the user, Continue, the provider's pages, Tessera's success page."""
    srv, up = world.tessera, world.upstream
    login = "link" + uuid.uuid4().hex[:8]
    success = f"{srv.base_url}/web/provider-connected/acme"
    shots = SHOTS / "connect-link"
    url = connect_link(srv, user, "acme")
    out = browser_flow("link", {
        "username": user.username, "password": user.password, "screenshots": str(shots),
        "url": url, "upstreamIssuer": up.issuer, "upstreamLogin": login, "successUrl": success})
    assert out["csp"] == [], f"Content-Security-Policy violations: {out['csp']}"
    assert out["confirmUrl"] == url, out["navigations"]
    assert (out["shownProvider"], out["shownUser"]) == ("acme", user.username), out
    assert out["successUrl"] == success and "is connected" in out["successText"], out
    [conn] = account_providers(srv, user.token)
    assert conn["provider"] == "acme" and conn["subject"] == login, conn
    for name in ("link-login", "connect-confirm", "provider-login", "provider-consent",
                 "provider-connected"):
        assert (shots / f"{name}.png").stat().st_size > 1000, name


# ---------------------------------------------------------------- sign-up


def check_signup(srv: Server, token: str) -> requests.Response:
    return requests.get(f"{srv.base_url}/no-auth/check-signup", params={"token": token}, timeout=TIMEOUT)


def pending_code(srv: Server, ticket: str) -> str:
    """check-signup while the sign-up waits: 202 signup_pending with the code to show."""
    r = check_signup(srv, ticket)
    assert r.status_code == 202 and r.json()["error"] == "signup_pending", r.text
    code = r.json()["user_code"]
    assert re.fullmatch(r"[B-DF-HJ-NP-TV-XZ]{4}-[B-DF-HJ-NP-TV-XZ]{4}", code), code
    return code


def signup_link(srv: Server, ticket: str, client_id: str, provider: str = "acme") -> str:
    return f"{srv.base_url}/web/provider-auth/{provider}?" + urlencode(
        {"signupToken": ticket, "client_id": client_id})


def start_signup(world: World, browser: requests.Session, login: str,
                 provider: str = "acme") -> tuple[str, requests.Response]:
    """An app's sign-up as far as Tessera's confirmation page: the app makes a ticket and opens
    the sign-up link in a browser, the person signs in at the provider as `login`, the browser
    comes back. The app's poll says pending throughout, with the code the page shows. Returns
    the ticket and the confirmation page."""
    srv = world.tessera
    ticket = str(uuid.uuid4())
    r = check_signup(srv, ticket)
    assert r.status_code == 404 and r.json()["error"] == "signup_not_found", r.text
    r = browser.get(signup_link(srv, ticket, world.signup_client, provider), allow_redirects=False,
                    timeout=TIMEOUT)
    assert r.status_code == 302, f"{r.status_code} {r.text[:500]}"
    authorize = r.headers["Location"]
    p = check_authorize_url(authorize, world.upstream, callback_url(srv, provider), oidc=provider == "acme")
    code = pending_code(srv, ticket)
    callback = provider_login(requests.Session(), authorize, login, p["redirect_uri"])
    assert pending_code(srv, ticket) == code
    page = browser.get(callback, allow_redirects=False, timeout=TIMEOUT)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"], page.text[:800]
    shown = _Page(page.text)
    assert shown.text("signup-app") == SIGNUP_APP
    assert shown.text("signup-code") == code, "the page and the app show the same code"
    assert pending_code(srv, ticket) == code, "nothing is released before the person confirms"
    return ticket, page


def signup(world: World, login: str, provider: str = "acme") -> tuple[dict, str]:
    """A whole sign-up as `login`, confirmed in the browser and polled; returns the one 200
    answer of check-signup and what the confirmation page said about the account."""
    srv = world.tessera
    browser = requests.Session()
    ticket, page = start_signup(world, browser, login, provider)
    account = _Page(page.text).text("signup-account")
    r = press(browser, page, "signup-confirm")
    assert r.status_code == 303, f"{r.status_code} {r.text[:800]}"
    assert urljoin(r.url, r.headers["Location"]) == f"{srv.base_url}/web/provider-connected/{provider}"
    r = check_signup(srv, ticket)
    assert r.status_code == 200, r.text
    done = r.json()
    for _ in range(2):
        r = check_signup(srv, ticket)
        assert r.status_code == 410 and r.json()["error"] == "signup_used", r.text
    return done, account


def test_signup_with_polling(world):
    srv, admin = world.tessera, world.admin
    login = "new" + uuid.uuid4().hex[:8]
    done, account = signup(world, login)
    assert done["provider"] == "acme", done
    u = done["user"]
    assert u["id"] and u["username"] and u["email"] == f"{login}@example.test", done
    assert account.startswith(f"This creates a new account, {u['username']} ({login}@example.test)"), account
    assert done["token_type"].lower() == "bearer" and done["expires_in"] > 0, done
    at = claims(done["access_token"])
    assert at["iss"] == srv.issuer(REALM) and at["azp"] == world.signup_client, at
    r = requests.get(f"{srv.issuer(REALM)}/protocol/openid-connect/userinfo",
                     headers=bearer(done["access_token"]), timeout=TIMEOUT)
    assert r.status_code == 200 and r.json()["sub"] == u["id"], r.text
    created = admin.get_user(u["id"])
    assert created["email"] == f"{login}@example.test"
    assert created["emailVerified"] is False, "acme's word on the email is not trusted (no trust_email)"
    r = requests.post(f"{srv.issuer(REALM)}/protocol/openid-connect/token", timeout=TIMEOUT, data={
        "grant_type": "refresh_token", "client_id": world.signup_client,
        "refresh_token": done["refresh_token"]})
    assert r.status_code == 200, r.text

    # The connection is the new user's.
    password = "Pw-" + uuid.uuid4().hex
    admin.set_user_password(u["id"], password, temporary=False)
    mine = password_login(srv, u["username"], password)["access_token"]
    [conn] = account_providers(srv, mine)
    assert conn["provider"] == "acme" and conn["subject"] == login, conn

    # Signing up again with the same upstream account is signing in as the same user, and the
    # page says so.
    again, account = signup(world, login)
    assert again["user"]["id"] == u["id"], again
    assert account.startswith(f"{SIGNUP_APP} will be signed in to your account {u['username']}"), account
    assert len(account_providers(srv, mine)) == 1
    admin.delete_user(u["id"])


def test_signup_cancelled_in_the_browser(world):
    """Cancel on the confirmation page: the app's poll answers access_denied, no account is made,
    and the page's form is spent."""
    srv = world.tessera
    login = "cancel" + uuid.uuid4().hex[:8]
    browser = requests.Session()
    ticket, page = start_signup(world, browser, login)
    cancelled = press(browser, page, "signup-cancel")
    assert cancelled.status_code == 200, f"{cancelled.status_code} {cancelled.headers}"
    assert _Page(cancelled.text).text("message-title") == "Sign-in cancelled", cancelled.text[:800]
    r = check_signup(srv, ticket)
    assert r.status_code == 403 and r.json()["error"] == "access_denied", r.text
    assert world.admin.get_users({"email": f"{login}@example.test"}) == []
    again = press(browser, page, "signup-confirm")  # Sign in afterwards releases nothing
    assert_error_page(srv, again)
    assert "already used" in _Page(again.text).text("message"), again.text[:800]
    assert check_signup(srv, ticket).status_code == 403


def test_signup_confirmation_belongs_to_the_browser(world):
    """The confirmation page's form posted from another browser (someone who got hold of the
    page's fields, without the round trip's cookie) is refused and spends nothing; the browser
    that made the round trip can still confirm."""
    srv = world.tessera
    login = "bound" + uuid.uuid4().hex[:8]
    browser = requests.Session()
    ticket, page = start_signup(world, browser, login)
    code = pending_code(srv, ticket)
    elsewhere = press(requests.Session(), page, "signup-confirm")
    assert_error_page(srv, elsewhere)
    assert "another browser" in _Page(elsewhere.text).text("message"), elsewhere.text[:800]
    assert pending_code(srv, ticket) == code
    r = press(browser, page, "signup-confirm")
    assert r.status_code == 303, r.text[:800]
    assert r.headers["Location"].endswith("/web/provider-connected/acme"), r.headers
    r = check_signup(srv, ticket)
    assert r.status_code == 200 and r.json()["user"]["email"] == f"{login}@example.test", r.text
    world.admin.delete_user(r.json()["user"]["id"])


def test_signup_finds_an_account_by_email_only_with_trust_email(world):
    """An account whose verified email the provider also says is verified: acme (no
    trust_email) creates a new account beside it; plain (trust_email) signs in to it, and its
    new accounts get the email as verified."""
    admin = world.admin
    login = "mail" + uuid.uuid4().hex[:8]
    email = f"{login}@example.test"
    existing = create_user(admin, "pre", email=email, emailVerified=True)
    made = []
    try:
        done, account = signup(world, login, "acme")
        made.append(done["user"]["id"])
        assert done["user"]["id"] != existing.id, "acme's email_verified alone links nothing"
        assert account.startswith("This creates a new account"), account

        done, account = signup(world, login, "plain")
        assert done["user"]["id"] == existing.id, done
        assert account.startswith(
            f"{SIGNUP_APP} will be signed in to your account {existing.username}"), account

        fresh = "trust" + uuid.uuid4().hex[:8]
        done, _ = signup(world, fresh, "plain")
        made.append(done["user"]["id"])
        assert done["user"]["id"] != existing.id
        assert admin.get_user(done["user"]["id"])["emailVerified"] is True, "plain's word is trusted"
    finally:
        for uid in [existing.id, *made]:
            admin.delete_user(uid)


def test_signup_never_reaches_an_administrator(world):
    """Self-service never signs in to an account holding the realm role admin, even one a
    trusted provider's verified email points at: the callback is refused, the poll denied."""
    srv = world.tessera
    login = "boss" + uuid.uuid4().hex[:8]
    boss = create_user(world.admin, "boss", email=f"{login}@example.test", emailVerified=True,
                       realmRoles=["admin"])
    try:
        browser = requests.Session()
        ticket = str(uuid.uuid4())
        r = browser.get(signup_link(srv, ticket, world.signup_client, "plain"), allow_redirects=False,
                        timeout=TIMEOUT)
        assert r.status_code == 302, r.text[:500]
        callback = provider_login(requests.Session(), r.headers["Location"], login,
                                  callback_url(srv, "plain"))
        r = browser.get(callback, allow_redirects=False, timeout=TIMEOUT)
        assert_error_page(srv, r)
        assert r.status_code == 403 and "signup-confirm" not in r.text, r.text[:800]
        r = check_signup(srv, ticket)
        assert r.status_code == 403 and r.json()["error"] == "access_denied", r.text
        assert account_providers(srv, password_login(
            srv, boss.username, boss.password)["access_token"]) == []
    finally:
        world.admin.delete_user(boss.id)


def test_signup_denied_at_the_provider(world):
    srv = world.tessera
    browser = requests.Session()
    ticket = str(uuid.uuid4())
    r = browser.get(signup_link(srv, ticket, world.signup_client), allow_redirects=False, timeout=TIMEOUT)
    assert r.status_code == 302, r.text[:500]
    callback = provider_login(requests.Session(), r.headers["Location"], "nobody",
                              callback_url(srv, "acme"), deny=True)
    assert query(callback)["error"] == "access_denied", callback
    r = browser.get(callback, allow_redirects=False, timeout=TIMEOUT)
    assert_error_page(srv, r)
    r = check_signup(srv, ticket)
    assert r.status_code == 403 and r.json()["error"] == "access_denied", r.text


def test_signup_confirmed_in_chromium(world):
    """A sign-up in Chromium: the provider's pages, then Tessera's confirmation page, whose code
    the app's poll shows too; Sign in releases the tokens to the polling app."""
    srv, up = world.tessera, world.upstream
    login = "chrome" + uuid.uuid4().hex[:8]
    ticket = str(uuid.uuid4())
    success = f"{srv.base_url}/web/provider-connected/acme"
    shots = SHOTS / "signup"
    out = browser_flow("signup", {
        "screenshots": str(shots), "url": signup_link(srv, ticket, world.signup_client),
        "upstreamIssuer": up.issuer, "upstreamLogin": login,
        "callbackPrefix": callback_url(srv, "acme"),
        "checkUrl": f"{srv.base_url}/no-auth/check-signup?token={ticket}", "successUrl": success})
    assert out["csp"] == [], f"Content-Security-Policy violations: {out['csp']}"
    pending = out["pending"]
    assert pending["status"] == 202 and pending["body"]["error"] == "signup_pending", pending
    assert out["shown"]["code"] == pending["body"]["user_code"], out
    assert out["shown"]["app"] == SIGNUP_APP, out
    assert out["shown"]["account"].startswith("This creates a new account"), out
    assert out["successUrl"] == success and "is connected" in out["successText"], out
    r = check_signup(srv, ticket)
    assert r.status_code == 200 and r.json()["user"]["email"] == f"{login}@example.test", r.text
    world.admin.delete_user(r.json()["user"]["id"])
    for name in ("provider-login", "provider-consent", "signup-confirm", "signup-done"):
        assert (shots / f"{name}.png").stat().st_size > 1000, name


# ---------------------------------------------------------------- Che


def test_che_oauth_api(world, user):
    srv, up = world.tessera, world.upstream
    r = requests.get(f"{srv.base_url}/api/oauth", params={"token": user.token}, timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    listed = {a["name"]: a for a in r.json()}
    assert {"acme", "plain"} <= set(listed), listed
    assert listed["acme"]["endpointUrl"] and isinstance(listed["acme"]["links"], list), listed

    # The dashboard opens authenticate with the user's token: it only names who the link is for;
    # the browser confirms on Tessera's page, signed in as that user.
    after = f"{CHE_ORIGIN}/dashboard/?ws=1"
    r = requests.get(f"{srv.base_url}/api/oauth/authenticate", allow_redirects=False, timeout=TIMEOUT,
                     params={"oauth_provider": "acme", "redirect_after_login": after, "token": user.token})
    assert r.status_code == 302, r.text
    link = urljoin(r.url, r.headers["Location"])
    assert link.startswith(f"{srv.issuer(REALM)}/account/connect/acme?link="), link
    authorize = confirm_connect(user, link, "acme")
    p = check_authorize_url(authorize, up, f"{srv.base_url}/api/oauth/callback", oidc=True)
    login = "che" + uuid.uuid4().hex[:8]
    callback = provider_login(requests.Session(), authorize, login, p["redirect_uri"])
    r = user.browser.get(callback, allow_redirects=False, timeout=TIMEOUT)
    assert r.status_code == 302, r.text
    assert urljoin(callback, r.headers["Location"]) == after, r.headers

    r = che_token(srv, user.token, "acme")
    assert r.status_code == 200, r.text
    access = r.json()["token"]
    assert up.userinfo(access).json()["sub"] == login
    [conn] = account_providers(srv, user.token)
    assert conn["provider"] == "acme" and conn["subject"] == login, conn

    # Tessera's own origin is an allowed target too.
    r = requests.get(f"{srv.base_url}/api/oauth/authenticate", allow_redirects=False, timeout=TIMEOUT,
                     params={"oauth_provider": "plain", "token": user.token,
                             "redirect_after_login": f"{srv.base_url}/web/provider-connected/plain"})
    assert r.status_code == 302, r.text
    assert r.headers["Location"].startswith(f"{srv.issuer(REALM)}/account/connect/plain?link="), r.headers

    r = requests.delete(f"{srv.base_url}/api/oauth/token", params={"oauth_provider": "acme"},
                        headers=bearer(user.token), timeout=TIMEOUT)
    assert r.status_code == 204, r.text
    assert 400 <= che_token(srv, user.token, "acme").status_code < 500
    assert account_providers(srv, user.token) == []


def test_che_token_expired_and_not_refreshable(world, user):
    """/api/oauth/token refreshes a token about to expire; once the provider has revoked the
    refresh token and the access token has expired, it answers 409 reconnect_required instead of
    handing out a dead token."""
    srv, up = world.tessera, world.upstream
    login = SHORT_LIVED + uuid.uuid4().hex[:8]  # 3-second access tokens at the provider
    authorize = start_connect(srv, "acme", user)
    finish_connect(srv, user, provider_login(requests.Session(), authorize, login,
                                             callback_url(srv, "acme")), "acme")
    [first] = up.issued(login, "AccessToken")
    r = che_token(srv, user.token, "acme")
    assert r.status_code == 200, r.text
    fresh = r.json()["token"]
    assert fresh != first and up.userinfo(fresh).status_code == 200, "refreshed before it expires"

    for refresh in up.issued(login, "RefreshToken"):
        up.revoke(refresh)
    time.sleep(3.5)
    r = che_token(srv, user.token, "acme")
    assert r.status_code == 409 and r.json()["error"] == "reconnect_required", r.text
    assert fresh not in r.text
    [conn] = account_providers(srv, user.token)  # still listed: connecting again replaces it
    assert conn["subject"] == login, conn


# ---------------------------------------------------------------- errors


def _b64d(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def _b64e(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def forge_state(state: str, *, replace: tuple[str, str] | None = None) -> str:
    """The state (a JWS) with a garbage signature and, optionally, every payload claim equal to
    replace[0] set to replace[1]."""
    parts = state.split(".")
    assert len(parts) == 3, f"contract assumption: the state is a compact JWS; got {state!r}"
    payload = json.loads(_b64d(parts[1]))
    if replace:
        keys = [k for k, v in payload.items() if v == replace[0]]
        assert keys, f"no claim of the state names {replace[0]!r}: {payload}"
        payload.update({k: replace[1] for k in keys})
    return ".".join([parts[0], _b64e(json.dumps(payload).encode()), _b64e(secrets.token_bytes(32))])


def assert_error_page(srv: Server, r: requests.Response, *, html: bool = True) -> None:
    assert 400 <= r.status_code < 500, f"{r.request.method} {r.url} -> {r.status_code} {r.text[:300]}"
    location = r.headers.get("Location")
    assert location is None or _origin(urljoin(r.url, location)) == srv.base_url, location
    if html:
        assert "text/html" in r.headers.get("content-type", ""), r.headers


def _get(user: User, url: str, **kw) -> requests.Response:
    """GET in the user's browser, not following the answer."""
    return user.browser.get(url, allow_redirects=False, timeout=TIMEOUT, **kw)


def _login_callback(world: World, user: User, provider: str = "acme", **kw) -> str:
    authorize = start_connect(world.tessera, provider, user)
    return provider_login(requests.Session(), authorize, "err" + uuid.uuid4().hex[:6],
                          callback_url(world.tessera, provider), **kw)


def _replayed(world, user):
    callback = _login_callback(world, user)
    first = _get(user, callback)
    assert first.status_code == 302, first.text
    return _get(user, callback)


def _other_browser(world, user):
    """The provider's redirect opened in a browser that did not start the round trip (a victim
    lured to an attacker's link): refused, and the URL is dead afterwards, so the browser that
    started it (the attacker's) cannot redeem the code the victim's provider login produced."""
    callback = _login_callback(world, user)
    r = requests.get(callback, allow_redirects=False, timeout=TIMEOUT)
    assert "another browser" in r.text, r.text[:300]
    replay = _get(user, callback)
    assert replay.status_code == 400 and "already used" in replay.text, replay.text[:300]
    return r


def _forged(world, user):
    callback = _login_callback(world, user)  # a real code, its state re-signed with garbage
    return _get(user, with_query(callback, state=forge_state(query(callback)["state"])))


def _unknown_env(world, user):
    state = query(start_connect(world.tessera, "acme", user))["state"]
    forged = forge_state(state, replace=(world.env, "zzz"))
    return _get(user, callback_url(world.tessera, "acme"), params={"code": "x", "state": forged})


def _valid_state(world, user, provider="acme"):
    return query(start_connect(world.tessera, provider, user))["state"]


def _link_for_another_account(world, user):
    """A link made for someone else (an attacker's), opened by the signed-in user (the victim):
    a readable refusal, and no Continue button."""
    attacker = new_user(world.tessera, world.admin)
    try:
        link = connect_link(world.tessera, attacker, "acme")
        r = open_signed_in(user, link)
        assert "This link was made for another account" in r.text, r.text[:800]
        assert "connect-confirm" not in r.text
        return r
    finally:
        world.admin.delete_user(attacker.id)


def _link_replayed(world, user):
    """A link is single use: its confirmation page once more, Continue refused."""
    link = connect_link(world.tessera, user, "acme")
    confirm_connect(user, link, "acme")
    page = open_signed_in(user, link)
    if page.status_code != 200:
        return page
    return press(user.browser, page, "connect-confirm")


def _link_of_another_provider(world, user):
    link = connect_link(world.tessera, user, "acme")
    return open_signed_in(user, link.replace("/account/connect/acme?", "/account/connect/plain?"))


def _link_tampered(world, user):
    link = connect_link(world.tessera, user, "acme")
    return open_signed_in(user, with_query(link, link=query(link)["link"][:-4] + "AAAA"))


def _confirm_without_csrf(world, user):
    page = open_signed_in(user, f"{world.tessera.issuer(REALM)}/account/connect/acme")
    assert page.status_code == 200, page.text[:500]
    return user.browser.post(page.url, data={"action": "connect"}, allow_redirects=False, timeout=TIMEOUT)


def _signup_with(client_id):
    return lambda w, u: _get(u, signup_link(w.tessera, str(uuid.uuid4()), client_id))


def _signup_with_admin_cli(world, user):
    """admin-cli never receives sign-ups, even a public client of that name with sign-up enabled."""
    admin_cli = world.admin.create_client(payload={
        "clientId": "admin-cli", "enabled": True, "publicClient": True,
        "attributes": {"tessera.signup.enabled": "true"}})
    try:
        return _signup_with("admin-cli")(world, user)
    finally:
        world.admin.delete_client(admin_cli)


def _link_with_master_token(world, user):
    admins = password_login(world.tessera, "admin", world.tessera.admin_password,
                                     realm="master", client_id="admin-cli")["access_token"]
    return requests.post(f"{world.tessera.base_url}/web/provider-auth/acme", headers=bearer(admins),
                         timeout=TIMEOUT)


ERRORS = {
    # name: (request, content: "html" | "json" | None, stores something)
    "missing state": (lambda w, u: _get(u, callback_url(w.tessera, "acme"), params={"code": "abc"}), "html", False),
    "garbage state": (lambda w, u: _get(u, callback_url(w.tessera, "acme"),
                                        params={"code": "abc", "state": "garbage"}), "html", False),
    "forged state": (_forged, "html", False),
    "replayed state": (_replayed, "html", True),
    "callback in another browser": (_other_browser, "html", False),
    "state of another provider": (lambda w, u: _get(
        u, _login_callback(w, u).replace("/provider-token/acme?", "/provider-token/plain?")), "html", False),
    "unknown provider": (lambda w, u: _get(u, callback_url(w.tessera, "nope"),
                                           params={"code": "abc", "state": _valid_state(w, u)}), "html", False),
    "access_denied at the provider": (lambda w, u: _get(u, _login_callback(w, u, deny=True)), "html", False),
    "access_denied crafted": (lambda w, u: _get(u, callback_url(w.tessera, "acme"), params={
        "error": "access_denied", "state": _valid_state(w, u)}), "html", False),
    "code exchange fails": (lambda w, u: _get(u, callback_url(w.tessera, "acme"), params={
        "code": "bogus-" + uuid.uuid4().hex, "state": _valid_state(w, u)}), "html", False),
    "unknown environment in state": (_unknown_env, "html", False),
    "provider-auth unknown provider": (lambda w, u: _get(u, f"{w.tessera.base_url}/web/provider-auth/nope"),
                                       "html", False),
    "provider-auth access_token in the URL": (lambda w, u: _get(
        u, f"{w.tessera.base_url}/web/provider-auth/acme", params={"access_token": u.token}), "html", False),
    "provider link without a token": (lambda w, u: requests.post(
        f"{w.tessera.base_url}/web/provider-auth/acme", timeout=TIMEOUT), "json", False),
    "provider link with a master realm token": (_link_with_master_token, "json", False),
    "connect link for another account": (_link_for_another_account, "html", False),
    "connect link replayed": (_link_replayed, "html", False),
    "connect link of another provider": (_link_of_another_provider, "html", False),
    "connect link tampered": (_link_tampered, "html", False),
    "connect page without csrf": (_confirm_without_csrf, "html", False),
    "connect page in the master realm": (lambda w, u: _get(
        u, f"{w.tessera.issuer('master')}/account/connect/acme"), "html", False),
    "provider-auth signup token not a uuid": (lambda w, u: _get(
        u, f"{w.tessera.base_url}/web/provider-auth/acme",
        params={"signupToken": "not-a-uuid", "client_id": w.signup_client}), "html", False),
    "provider-auth signup unknown client": (_signup_with("no-such-client"), "html", False),
    "provider-auth signup with admin-cli": (_signup_with_admin_cli, "html", False),
    "provider-auth signup client without sign-up enabled": (_signup_with("tessera-cli"), "html", False),
    "redirect_after_login foreign origin": (lambda w, u: _get(
        u, f"{w.tessera.base_url}/api/oauth/authenticate",
        params={"oauth_provider": "acme", "redirect_after_login": "https://evil.example/steal",
                "token": u.token}), None, False),
    "check-signup unknown token": (lambda w, u: _get(u, f"{w.tessera.base_url}/no-auth/check-signup",
                                                     params={"token": str(uuid.uuid4())}), "json", False),
}

# The exact answer where it says something specific.
ERROR_STATUS = {
    "provider-auth access_token in the URL": 400,
    "provider link without a token": (401, "invalid_token"),
    "provider link with a master realm token": (401, "invalid_token"),
    "connect link for another account": 403,
    "connect page in the master realm": 404,
    "redirect_after_login foreign origin": 400,
    "check-signup unknown token": (404, "signup_not_found"),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_errors_are_pages_not_redirects(world, user, case):
    make, content, stores = ERRORS[case]
    r = make(world, user)
    assert_error_page(world.tessera, r, html=content == "html")
    expected = ERROR_STATUS.get(case)
    if isinstance(expected, tuple):
        assert (r.status_code, r.json()["error"]) == expected, r.text
    elif expected:
        assert r.status_code == expected, r.text[:500]
    if not stores:
        assert account_providers(world.tessera, user.token) == [], "nothing is stored on an error"


# ---------------------------------------------------------------- two environments


B_SUCCESS_URL = f"{CHE_ORIGIN}/connected?from=b"


@dataclasses.dataclass
class Envs:
    a: Server
    b: Server
    upstream: Upstream
    admin_b: object  # KeycloakAdmin on b's default realm


@pytest.fixture(scope="module")
def envs(request, tmp_path_factory):
    """Deployments a and b; b's provider callbacks go to a (b's auth_origin); b sends browsers
    to its connect_success_url after connecting."""
    tmp = tmp_path_factory.mktemp("envs")
    port_a, port_b = _free_port(), _free_port()
    url_a, url_b = f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"
    upstream = Upstream(tmp, [callback_url(url_a, "acme"), callback_url(url_a, "plain"),
                              f"{url_a}/api/oauth/callback", f"{url_b}/api/oauth/callback"])
    secret_file = tmp / "plain.secret"
    secret_file.write_text(upstream.client_secret)
    started = []
    try:
        (tmp / "a").mkdir()
        (tmp / "b").mkdir()
        started.append(start_tessera(request, tmp / "a", port_a, tessera_config(
            env="a", upstream=upstream, secret_file=secret_file, environments={"b": url_b}), upstream))
        started.append(start_tessera(request, tmp / "b", port_b, tessera_config(
            env="b", upstream=upstream, secret_file=secret_file, environments={"a": url_a},
            auth_origin=url_a, success_url=B_SUCCESS_URL), upstream))
        yield Envs(started[0], started[1], upstream, make_admin(started[1], REALM))
    finally:
        for srv in started:
            _stop_server(srv)
        upstream.stop()


def test_connect_across_environments(envs):
    a, b, up = envs.a, envs.b, envs.upstream
    user = new_user(b, envs.admin_b)
    authorize = start_connect(b, "acme", user)
    p = check_authorize_url(authorize, up, callback_url(a, "acme"), oidc=True)
    login = "env" + uuid.uuid4().hex[:8]
    callback = provider_login(requests.Session(), authorize, login, p["redirect_uri"])

    r = _get(user, callback)  # at a, which sends it on to b, unchanged
    assert r.status_code == 302, r.text
    onward = urljoin(callback, r.headers["Location"])
    assert _origin(onward) == b.base_url, onward
    assert urlsplit(onward).path == urlsplit(callback).path, onward
    assert parse_qs(urlsplit(onward).query) == parse_qs(urlsplit(callback).query), onward
    finish_connect(b, user, onward, "acme", success_url=B_SUCCESS_URL)
    access = che_token(b, user.token, "acme").json()["token"]
    assert up.userinfo(access).json()["sub"] == login
    [conn] = account_providers(b, user.token)
    assert conn["subject"] == login

    # The same callback again: whatever a does, it ends in an error page (b spent the state).
    r = _get(user, callback)
    if r.status_code == 302 and r.headers["Location"].startswith(b.base_url + "/"):
        r = _get(user, r.headers["Location"])
    assert_error_page(b if r.url.startswith(b.base_url) else a, r)

    # A forged state naming b: a may pass it on (only to b), b refuses it.
    forged = forge_state(p["state"])
    r = _get(user, with_query(callback, state=forged))
    if r.status_code == 302:
        assert r.headers["Location"].startswith(b.base_url + "/no-auth/provider-token/acme?"), r.headers
        r = _get(user, r.headers["Location"])
    assert_error_page(b if r.url.startswith(b.base_url) else a, r)
    assert account_providers(b, user.token) == [conn]
    envs.admin_b.delete_user(user.id)


def test_relay_to_another_environment(envs):
    a, b = envs.a, envs.b
    r = requests.post(f"{a.base_url}/relay/b/realms/master/protocol/openid-connect/token", timeout=TIMEOUT,
                      data={"grant_type": "password", "client_id": "admin-cli",
                            "username": "admin", "password": b.admin_password})
    assert r.status_code == 200, r.text
    assert claims(r.json()["access_token"])["iss"] == b.issuer("master")

    # Headers (Basic client authentication) and query strings go through too.
    cid, secret = "relay-" + uuid.uuid4().hex[:6], "s-" + secrets.token_hex(12)
    cuuid = envs.admin_b.create_client(payload={
        "clientId": cid, "enabled": True, "publicClient": False, "secret": secret,
        "serviceAccountsEnabled": True, "standardFlowEnabled": False})
    try:
        r = requests.post(f"{a.base_url}/relay/b/realms/{REALM}/protocol/openid-connect/token",
                          data={"grant_type": "client_credentials"}, auth=(cid, secret), timeout=TIMEOUT)
        assert r.status_code == 200, r.text
        token = claims(r.json()["access_token"])
        assert token["iss"] == b.issuer(REALM) and token["azp"] == cid, token
        r = requests.get(f"{a.base_url}/relay/b/realms/{REALM}/.well-known/openid-configuration",
                         timeout=TIMEOUT)
        assert r.status_code == 200 and r.json()["issuer"] == b.issuer(REALM), r.text
    finally:
        envs.admin_b.delete_client(cuuid)

    # A sign-up ticket b knows (on SQLite a, with its own database, does not): the query gets
    # through (and the answers are b's JSON, status and all).
    app, app_uuid = signup_client(envs.admin_b)
    try:
        ticket = str(uuid.uuid4())
        r = requests.get(signup_link(b, ticket, app), allow_redirects=False, timeout=TIMEOUT)
        assert r.status_code == 302, r.text[:500]
        r = requests.get(f"{a.base_url}/relay/b/no-auth/check-signup", params={"token": ticket},
                         timeout=TIMEOUT)
        assert r.status_code == 202 and r.json()["error"] == "signup_pending", r.text
        assert r.json()["user_code"] == pending_code(b, ticket), r.text
        r = requests.get(f"{a.base_url}/relay/b/no-auth/check-signup", params={"token": str(uuid.uuid4())},
                         timeout=TIMEOUT)
        assert r.status_code == 404 and r.json()["error"] == "signup_not_found", r.text
    finally:
        envs.admin_b.delete_client(app_uuid)


def test_relay_to_an_unknown_environment(envs):
    r = requests.post(f"{envs.a.base_url}/relay/zzz/realms/master/protocol/openid-connect/token",
                      data={"grant_type": "client_credentials"}, timeout=TIMEOUT)
    assert r.status_code == 404, r.text
    assert r.headers.get("content-type", "").startswith("application/json") and r.json()["error"], r.text
