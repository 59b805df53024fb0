"""Verida-style consent login driven by real signers nobody here wrote:

- PyPI eth-account: ``Account.sign_message(encode_defunct(text=...))``
- npm ethers: ``wallet.signMessage`` (through js/sign.mjs)
- PyPI PyNaCl: Ed25519 for a ``did:key``
- PyPI PyJWT: verifies the access token through the realm JWKS.

The endpoints are Verida's: ``/auth/generateAuthJwt``, ``/auth/authenticate``, ``/auth/connect``,
``/auth/regenerateRefreshToken``, ``/auth/invalidateDeviceId``, ``/auth/isTokenValid``.

A signature is self-service: it never signs in to an account holding the realm role ``admin``.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import jwt
import nacl.signing
import requests
from eth_account import Account
from eth_account.messages import encode_defunct
from jwt import PyJWKClient

from conftest import DEFAULT_REALM
from helpers import claims

JS = Path(__file__).resolve().parent / "js"
REALM = DEFAULT_REALM  # /auth/* acts in the server's default realm
CTX = "Verida: Interop App"
B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def b58encode(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = B58[r] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


def auth_message(ctx: str, did: str, auth_request_id: str) -> str:
    return f'Authenticate this application context: "{ctx}"?\n\n{did}\n{auth_request_id}'


def invalidate_message(ctx: str, did: str, device_id: str) -> str:
    return f'Invalidate device for this application context: "{ctx}"?\n\n{did}\n{device_id}'


def call(server, op: str, body: dict) -> requests.Response:
    return requests.post(f"{server.base_url}/auth/{op}", json=body, timeout=30)


def ok(r: requests.Response) -> dict:
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "success", body
    return body


def challenge(server, did: str, ctx: str = CTX) -> tuple[str, str]:
    body = ok(call(server, "generateAuthJwt", {"did": did, "contextName": ctx}))
    return body["authJwt"]["authJwt"], body["authJwt"]["authRequestId"]


def eth_sign(account, message: str) -> str:
    return account.sign_message(encode_defunct(text=message)).signature.hex()


def ethers_sign(message: str, private_key: str | None = None) -> dict:
    out = subprocess.run(
        ["node", str(JS / "sign.mjs")],
        input=json.dumps({"privateKey": private_key, "message": message}),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(out.stdout)


def verify_access(server, token: str) -> dict:
    """PyJWT through the JWKS, with every check on."""
    jwks = PyJWKClient(f"{server.base_url}/realms/{REALM}/protocol/openid-connect/certs")
    key = jwks.get_signing_key_from_jwt(token)
    return jwt.decode(
        token,
        key.key,
        algorithms=["RS256"],
        audience="tessera-consent",
        issuer=server.issuer(REALM),
        options={"require": ["exp", "iat", "iss", "sub"]},
    )


def authenticate(server, did: str, sign, device: str = "device-1", ctx: str = CTX) -> dict:
    jwt_, request_id = challenge(server, did, ctx)
    normalized = did.lower() if not did.startswith("did:key:") else did
    signature = sign(auth_message(ctx, normalized, request_id))
    return ok(call(server, "authenticate", {
        "authJwt": jwt_, "did": did, "contextName": ctx, "deviceId": device,
        "signature": signature, "origin": "https://interop.example",
    }))


def test_eth_account_signature_gets_tokens_pyjwt_verifies(server):
    acct = Account.create()
    did = f"did:ethr:{acct.address}"  # EIP-55 mixed case: the server normalises it
    body = authenticate(server, did, lambda m: eth_sign(acct, m))
    assert body["host"] == server.base_url
    access = verify_access(server, body["accessToken"])
    assert access["did"] == did.lower()
    assert access["contextName"] == CTX
    assert access["type"] == "access"
    assert access["sub"].startswith("v") and len(access["sub"]) == 65
    assert access["exp"] - access["iat"] == 300

    # connect: a new access token for the same database user.
    again = ok(call(server, "connect", {
        "refreshToken": body["refreshToken"], "did": did, "contextName": CTX}))
    assert verify_access(server, again["accessToken"])["sub"] == access["sub"]

    # The storage API's own check: the access token through the verify layer.
    r = requests.get(f"{server.base_url}/auth/session",
                     headers={"Authorization": f"Bearer {body['accessToken']}"}, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["origin"] == "https://interop.example"

    # Rotation: old token dead at once, new one valid for 30 days.
    new = ok(call(server, "regenerateRefreshToken", {
        "refreshToken": body["refreshToken"], "did": did, "contextName": CTX}))["refreshToken"]
    r = call(server, "connect", {"refreshToken": body["refreshToken"], "did": did, "contextName": CTX})
    assert r.status_code == 401 and r.json()["status"] == "fail"
    valid = ok(call(server, "isTokenValid", {"refreshToken": new, "contextName": CTX}))
    assert valid["expires"] > access["iat"] + 29 * 86400


def test_ethers_wallet_signmessage_is_accepted(server):
    wallet = ethers_sign("probe")  # a fresh wallet and its key
    did = f"did:pkh:eip155:1:{wallet['address']}"
    body = authenticate(server, did, lambda m: ethers_sign(m, wallet["privateKey"])["signature"])
    assert verify_access(server, body["accessToken"])["did"] == did.lower()


def test_pynacl_ed25519_did_key(server):
    sk = nacl.signing.SigningKey.generate()
    did = "did:key:z" + b58encode(b"\xed\x01" + bytes(sk.verify_key))
    body = authenticate(server, did, lambda m: sk.sign(m.encode()).signature.hex())
    assert verify_access(server, body["accessToken"])["did"] == did


def test_invalidate_device_with_eth_account(server):
    acct = Account.create()
    did = f"did:vda:testnet:{acct.address}"
    sign = lambda m: eth_sign(acct, m)  # noqa: E731
    device = "phone-" + uuid.uuid4().hex[:8]
    first = authenticate(server, did, sign, device)
    second = authenticate(server, did, sign, device)
    laptop = authenticate(server, did, sign, "laptop")

    other = Account.create()
    r = call(server, "invalidateDeviceId", {
        "did": did, "contextName": CTX, "deviceId": device,
        "signature": eth_sign(other, invalidate_message(CTX, did.lower(), device))})
    assert r.status_code == 401, r.text

    body = ok(call(server, "invalidateDeviceId", {
        "did": did, "contextName": CTX, "deviceId": device,
        "signature": sign(invalidate_message(CTX, did.lower(), device))}))
    assert body["revoked"] == 2
    for tokens in (first, second):
        r = call(server, "isTokenValid", {"refreshToken": tokens["refreshToken"], "contextName": CTX})
        assert (r.status_code, r.json()) == (401, {"status": "fail"})
    ok(call(server, "isTokenValid", {"refreshToken": laptop["refreshToken"], "contextName": CTX}))


def test_a_signature_never_reaches_an_administrator(server, realm_admin):
    """Once the DID's account holds the realm role `admin`, neither a new signature nor its
    refresh token signs anything in."""
    acct = Account.create()
    did = f"did:ethr:{acct.address}"
    sign = lambda m: eth_sign(acct, m)  # noqa: E731
    first = authenticate(server, did, sign)
    uid = realm_admin.get_user_id(did.lower())  # the DID's account, made by its first sign-in
    assert uid and verify_access(server, first["accessToken"])["did"] == did.lower()
    realm_admin.update_user(uid, {"realmRoles": ["admin"]})
    try:
        jwt_, request_id = challenge(server, did)
        r = call(server, "authenticate", {
            "authJwt": jwt_, "did": did, "contextName": CTX, "deviceId": "device-1",
            "signature": sign(auth_message(CTX, did.lower(), request_id))})
        assert r.status_code == 403 and r.json()["status"] == "fail", r.text
        r = call(server, "connect", {"refreshToken": first["refreshToken"], "did": did, "contextName": CTX})
        assert r.status_code == 403 and r.json()["status"] == "fail", r.text
        r = call(server, "isTokenValid", {"refreshToken": first["refreshToken"], "contextName": CTX})
        assert (r.status_code, r.json()) == (401, {"status": "fail"})
    finally:
        realm_admin.delete_user(uid)


def test_replayed_and_foreign_challenges_fail(server):
    acct = Account.create()
    did = f"did:ethr:{acct.address}"
    jwt_, request_id = challenge(server, did)
    body = {"authJwt": jwt_, "did": did, "contextName": CTX, "deviceId": "d",
            "signature": eth_sign(acct, auth_message(CTX, did.lower(), request_id))}
    ok(call(server, "authenticate", body))
    r = call(server, "authenticate", body)
    assert r.status_code == 401 and "already been used" in r.json()["message"]

    # The challenge is server-private (HS256): it never verifies against the JWKS.
    assert jwt.get_unverified_header(jwt_)["alg"] == "HS256"
    assert claims(jwt_)["sub"] == did.lower()

    r = call(server, "generateAuthJwt", {"did": "did:web:example.com", "contextName": CTX})
    assert r.status_code == 400 and "unsupported DID method" in r.json()["message"]


def test_cors_lets_dapps_call_from_the_browser(server):
    r = requests.options(f"{server.base_url}/auth/connect", headers={
        "Origin": "https://dapp.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"}, timeout=30)
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "*"
    assert "POST" in r.headers["access-control-allow-methods"]
