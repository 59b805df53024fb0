"""The OpenAPI document and Swagger UI (issue 18).

- ``/openapi.json`` is a valid OpenAPI 3.1 document (openapi-spec-validator) that covers the
  Admin API, the OIDC endpoints and the bearer scheme;
- ``/swagger`` in headless Chromium (js/swagger.mjs, playwright-core): no Content-Security-Policy
  violation and no console error while Authorize takes an admin's bearer token and "Try it out"
  executes ``GET /admin/realms``, which Swagger UI shows answered 200 with the realms.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import requests
from openapi_spec_validator import validate

HERE = Path(__file__).resolve().parent
SHOTS = Path(os.environ.get("TESSERA_INTEROP_OUT", HERE / "out")) / "screenshots"


def admin_token(server) -> str:
    r = requests.post(f"{server.base_url}/realms/master/protocol/openid-connect/token", data={
        "grant_type": "password", "client_id": "admin-cli", "username": "admin",
        "password": server.admin_password,
    }, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def test_document_is_valid_openapi_3_1(server):
    r = requests.get(f"{server.base_url}/openapi.json", timeout=30)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    doc = r.json()
    assert doc["openapi"].startswith("3.1.")
    validate(doc)
    paths = doc["paths"]
    for path in ("/admin/realms", "/admin/realms/{realm}/users",
                 "/realms/{realm}/protocol/openid-connect/token",
                 "/realms/{realm}/.well-known/openid-configuration",
                 "/api/workspace", "/auth/authenticate", "/health/ready"):
        assert path in paths, path
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert paths["/admin/realms"]["get"]["security"] == [{"bearer": []}]


def test_swagger_ui_tries_the_admin_api_under_its_csp(server):
    if not Path(os.environ.get("CHROMIUM", "/usr/bin/chromium")).exists():
        pytest.fail("Chromium is not installed (.ci/run installs Debian's chromium)", pytrace=False)
    cfg = {"url": f"{server.base_url}/swagger", "token": admin_token(server), "tag": "admin",
           "operationId": "realms_list", "screenshots": str(SHOTS)}
    p = subprocess.run(["node", str(HERE / "js" / "swagger.mjs"), json.dumps(cfg)],
                       capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, f"{p.stderr}\n{p.stdout}"
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert "script-src 'self'" in out["policy"]
    assert out["csp"] == [], out["csp"]
    assert out["errors"] == [], out["errors"]
    assert out["status"] == "200", out
    realms = json.loads(out["body"])
    assert "master" in [r["realm"] for r in realms]
