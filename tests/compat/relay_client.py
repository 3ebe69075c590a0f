"""Drives the official Massive Python client (PyPI `massive`) against tickwire's Massive relay.

Usage: python relay_client.py BASE_URL ADMIN_PASSWORD

BASE_URL is embedded tickwire's (or the gateway's) http://host:port. Logs in to the control
plane as admin, makes relay keys with `POST /api/relay-keys`, then points the real client at
the relay (`feed=host:port`, `secure=False`) and checks: typed trades, quotes and second bars;
two programs on one key at once; a bad key is the client's AuthError; deleting a key ends the
client's connection. Exits non-zero with a message on any failure.
"""

import asyncio
import http.cookiejar
import json
import sys
import urllib.request

from massive import WebSocketClient
from massive.websocket.models import EquityAgg, EquityQuote, EquityTrade

DEADLINE_S = 60


class ControlPlane:
    def __init__(self, base: str, password: str):
        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )
        body = self.call("POST", "/login", {"username": "admin", "password": password})
        self.csrf = body["csrf"]

    def call(self, method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if getattr(self, "csrf", None):
            req.add_header("X-CSRF-Token", self.csrf)
        with self.opener.open(req, timeout=10) as r:
            return json.loads(r.read() or b"null")

    def new_key(self, name: str):
        k = self.call("POST", "/api/relay-keys", {"name": name})
        return k["id"], k["key"]


def client(feed: str, key: str, subs) -> WebSocketClient:
    return WebSocketClient(
        api_key=key, feed=feed, market="stocks", subscriptions=subs, secure=False, max_reconnects=0
    )


async def typed_stream(feed: str, key: str, name: str) -> dict:
    c = client(feed, key, ["T.*", "Q.*", "A.*"])
    seen = {}

    async def handle(msgs):
        for m in msgs:
            seen[type(m).__name__] = seen.get(type(m).__name__, 0) + 1
        if all(cls.__name__ in seen for cls in (EquityTrade, EquityQuote, EquityAgg)):
            await c.close()

    try:
        await asyncio.wait_for(c.connect(handle), timeout=DEADLINE_S)
    except asyncio.TimeoutError:
        raise SystemExit(f"FAIL: {name}: within {DEADLINE_S}s the client parsed only {seen}")
    return seen


async def two_programs_one_key(feed: str, key: str) -> None:
    a, b = await asyncio.gather(typed_stream(feed, key, "program 1"), typed_stream(feed, key, "program 2"))
    print(f"ok: two programs on one relay key parsed {a} and {b}")


async def bad_key_is_auth_error(feed: str) -> None:
    c = client(feed, "twk_not-a-key", ["T.*"])

    async def handle(_msgs):
        pass

    try:
        await asyncio.wait_for(c.connect(handle), timeout=DEADLINE_S)
    except Exception as e:  # the client raises its AuthError with the server's message
        if type(e).__name__ == "AuthError" and "authentication failed" in str(e):
            print("ok: bad key raised AuthError('authentication failed')")
            return
        raise SystemExit(f"FAIL: bad key raised {type(e).__name__}: {e}")
    raise SystemExit("FAIL: bad key did not raise")


async def revoked_key_ends_the_socket(feed: str, cp: ControlPlane) -> None:
    key_id, key = cp.new_key("revoked soon")
    await connect_when_known(feed, key)
    c = client(feed, key, ["T.*"])
    got_data = asyncio.Event()

    async def handle(msgs):
        if msgs:
            got_data.set()

    async def revoke_when_streaming():
        await got_data.wait()
        await asyncio.get_running_loop().run_in_executor(
            None, cp.call, "DELETE", f"/api/relay-keys/{key_id}"
        )

    revoker = asyncio.ensure_future(revoke_when_streaming())
    try:
        await asyncio.wait_for(c.connect(handle), timeout=DEADLINE_S)
    except asyncio.TimeoutError:
        raise SystemExit("FAIL: the revoked key's connection did not end")
    except Exception:
        pass  # the client may raise on the close; ending is what counts
    if not got_data.is_set():
        raise SystemExit("FAIL: the key never streamed")
    await revoker
    print("ok: deleting the key ended the client's connection")


async def connect_when_known(feed: str, key: str) -> None:
    """A new key reaches the relay within a second or so: retry auth until it does."""
    for _ in range(50):
        try:
            await typed_stream(feed, key, "first connect")
            return
        except Exception as e:
            if type(e).__name__ != "AuthError":
                raise
            await asyncio.sleep(0.2)
    raise SystemExit("FAIL: the new relay key was never accepted")


def main() -> None:
    base, password = sys.argv[1], sys.argv[2]
    feed = base.split("://", 1)[1].rstrip("/")
    cp = ControlPlane(base, password)
    _, key = cp.new_key("compat")
    asyncio.run(connect_when_known(feed, key))
    print("ok: official client parsed trades, quotes and second bars from the relay")
    asyncio.run(two_programs_one_key(feed, key))
    asyncio.run(bad_key_is_auth_error(feed))
    asyncio.run(revoked_key_ends_the_socket(feed, cp))
    print("relay-compat: 4 passed, 0 failed")


if __name__ == "__main__":
    main()
