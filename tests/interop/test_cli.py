"""The developer CLI (`tessera login`, `sectoken get`) as a person and an IDE use it: a device
login in a real terminal (tmux) approved on the verification page by a script, `--browser`
login completed in headless Chromium, and `--output json` printing only JSON when piped."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests

from conftest import REPO, make_admin
from test_browser import run_flow

REALM = "clidev"
CLIENT = "ide-cli"
USER = "frank"
PASSWORD = "Frank-pw-4k2j9"
BIN = os.environ.get("TESSERA_BIN", str(REPO / "target" / "debug" / "tessera"))


@pytest.fixture(scope="module")
def realm(server, admin):
    admin.create_realm(payload={"realm": REALM, "enabled": True})
    ra = make_admin(server, REALM)
    ra.create_client(payload={
        "clientId": CLIENT, "publicClient": True, "enabled": True, "standardFlowEnabled": True,
        "redirectUris": ["http://127.0.0.1/callback"],
        "attributes": {"oauth2.device.authorization.grant.enabled": "true"},
    })
    ra.create_user(payload={"username": USER, "email": "frank@example.com", "enabled": True,
                            "credentials": [{"type": "password", "value": PASSWORD, "temporary": False}]})
    yield
    admin.delete_realm(REALM)


@pytest.fixture
def home(tmp_path, server, realm):
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")},
           "TESSERA_CLI_HOME": str(tmp_path / "cli"), "NO_COLOR": "1"}
    subprocess.run([BIN, "connections", "add", "--id", "dev", "--url", server.base_url, "--realm", REALM,
                    "--client-id", CLIENT], env=env, check=True, capture_output=True, stdin=subprocess.DEVNULL)
    return env


def cli(env, *args, stdin=None):
    return subprocess.run([BIN, *args, "--insecure-keyring"], env=env, capture_output=True, text=True,
                          input=stdin, timeout=60)


def approve(server, user_code: str):
    """What a person does in the browser: open the verification page, sign in, allow."""
    s = requests.Session()
    base = f"{server.issuer(REALM)}/device"
    page = s.get(base, params={"user_code": user_code}, timeout=10)
    field = lambda html, name: re.search(rf'name="{name}" value="([^"]*)"', html).group(1)
    r = s.post(base, data={"csrf": field(page.text, "csrf"), "login_state": field(page.text, "login_state"),
                           "username": USER, "password": PASSWORD}, timeout=10)
    assert r.status_code == 200 and "device-approve" in r.text, r.text[:500]
    r = s.post(base, data={"csrf": field(r.text, "csrf"), "user_code": user_code, "action": "approve"}, timeout=10)
    assert "Device connected" in r.text


def test_device_login_in_a_terminal(server, home):
    if not shutil.which("tmux"):
        pytest.fail("tmux is not installed (.ci/run installs Debian's tmux)", pytrace=False)
    session = f"tessera-{os.getpid()}"
    env_args = [f"{k}={v}" for k, v in home.items() if k in ("TESSERA_CLI_HOME", "NO_COLOR", "PATH", "HOME")]
    cmd = " ".join(["env", *env_args, BIN, "login", "--conn", "dev", "--no-open", "--insecure-keyring",
                    ";", "echo", "EXIT=$?", ";", "sleep", "60"])
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "120", "-y", "20", cmd], check=True)
    try:
        def pane():
            return subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True,
                                  text=True, check=True).stdout
        deadline = time.monotonic() + 20
        code = None
        while time.monotonic() < deadline and not code:
            m = re.search(r"enter the code ([B-Z]{4}-[B-Z]{4})", pane())
            code = m and m.group(1)
            time.sleep(0.2)
        assert code, pane()
        time.sleep(1.0)
        waiting = pane()
        assert "Waiting for you to approve the sign-in" in waiting, waiting
        approve(server, code)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "EXIT=" not in pane():
            time.sleep(0.2)
        final = pane()
        assert "EXIT=0" in final and f"signed in to dev as {USER}" in final, final
        # The spinner line was cleared: no frame of it is left on screen.
        assert "Waiting for you" not in final, final
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    out = cli(home, "sectoken", "get", "--conn", "dev")
    assert out.returncode == 0, out.stderr
    tokens = json.loads(out.stdout)
    r = requests.get(f"{server.issuer(REALM)}/protocol/openid-connect/userinfo",
                     headers={"Authorization": f"Bearer {tokens['access_token']}"}, timeout=10)
    assert r.json()["preferred_username"] == USER


def test_browser_login_through_chromium(server, home):
    proc = subprocess.Popen([BIN, "login", "--conn", "dev", "--browser", "--no-open", "--insecure-keyring"],
                            env=home, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        url = None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not url:
            line = proc.stderr.readline()
            m = re.search(r"open (http\S+)", line)
            url = m and m.group(1)
        assert url and "code_challenge_method=S256" in url, url
        out = run_flow("visit", {"url": url, "username": USER, "password": PASSWORD})
        assert "return to the terminal" in out["text"]
        assert proc.wait(timeout=30) == 0
        assert f"signed in to dev as {USER}" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert cli(home, "sectoken", "get", "--conn", "dev").returncode == 0


def test_json_output_is_only_json_when_piped(home):
    for args in (["connections", "list", "-o", "json"], ["connections", "show", "dev", "-o", "json"]):
        out = subprocess.run([BIN, *args], env=home, capture_output=True, text=True, timeout=30)
        assert out.returncode == 0 and out.stderr == ""
        json.loads(out.stdout)
        assert "\x1b[" not in out.stdout
    text = subprocess.run([BIN, "connections", "list"], env=home, capture_output=True, text=True, timeout=30)
    assert "\x1b[" not in text.stdout, "no colours when not a terminal"
