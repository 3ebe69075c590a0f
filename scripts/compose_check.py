#!/usr/bin/env python3
"""What scripts/compose-test.sh checks through the stack's published port, as a client would.

  compose_check.py stream URL --sockets N   log in, get WDS tokens, N v2 sockets and one v1
                                            socket each receive scanner updates; with
                                            --spread K, more sockets (up to 40) until they
                                            are on K WDS nodes (/api/control/wds)
  compose_check.py nodes URL role=N ...     the control plane sees N live nodes of each role

The admin's password comes from SCP_ADMIN_PASSWORD. Needs the `websockets` package (PyPI).
Exits 1 with the reason on the first failed check.
"""
import argparse
import http.cookiejar
import json
import os
import sys
import time
import urllib.error
import urllib.request

from websockets.sync.client import connect

TOPIC = "scanners:top_gainers"
NEWS_TOPIC = "news:feed:latest"
DEADLINE = 90.0
MAX_SOCKETS = 40  # --spread opens at most this many


def fail(msg):
    print(f"compose_check: FAILED: {msg}", file=sys.stderr)
    sys.exit(1)


class Session:
    """A logged-in control-plane session (cookie jar and CSRF token)."""

    def __init__(self, base):
        self.base = base.rstrip("/")
        self.csrf = None  # from the login's answer
        self.http = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        body = {"username": "admin", "password": os.environ["SCP_ADMIN_PASSWORD"]}
        self.csrf = self.call("POST", "/login", body)["csrf"]

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("content-type", "application/json")
        if self.csrf:
            req.add_header("x-csrf-token", self.csrf)
        try:
            with self.http.open(req, timeout=15) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:
            fail(f"{method} {path}: HTTP {e.code}: {e.read()[:300]!r}")
        except OSError as e:
            fail(f"{method} {path}: {e}")

    def token(self):
        return self.call("POST", "/api/token")["token"]

    def ws_url(self, path):
        return self.base.replace("http", "ws", 1) + path


def until(what, f):
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        v = f()
        if v:
            return v
        time.sleep(0.5)
    fail(f"timed out waiting for {what}")


def v2_socket(s, topic=TOPIC):
    """A v2 socket with a subscription to `topic` that has delivered its snapshot."""
    ws = connect(s.ws_url("/ws/v2"), open_timeout=15)
    ws.send(json.dumps({"type": "auth", "token": s.token()}))
    welcome = json.loads(ws.recv(timeout=15))
    if welcome.get("type") != "welcome":
        fail(f"v2: expected welcome, got {welcome}")
    ws.send(json.dumps({"type": "subscribe", "topic": topic}))
    return ws


def next_frame(ws, what, pred):
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        try:
            m = json.loads(ws.recv(timeout=max(0.1, end - time.monotonic())))
        except TimeoutError:
            break
        if isinstance(m, dict) and m.get("type") == "error":
            fail(f"{what}: error frame {m}")
        if pred(m):
            return m
    fail(f"timed out waiting for {what}")


def stream(args):
    s = Session(args.url)
    sockets = [v2_socket(s) for _ in range(args.sockets)]
    for i, ws in enumerate(sockets):
        next_frame(ws, f"the snapshot on v2 socket {i + 1}", lambda m: m.get("type") == "snapshot")
    if args.spread:
        # The gateway learns of a new WDS replica by DNS within seconds, and until then sends
        # every socket to the ones it knows. It sends each new socket to the replica with the
        # fewest, so more sockets reach a replica as soon as the gateway knows it.
        def spread():
            wds = s.call("GET", "/api/control/wds")
            busy = [n for n in wds.get("nodes", []) if n.get("ok") and n.get("sessions", 0) > 0]
            if len(busy) >= args.spread:
                return wds
            if len(sockets) < MAX_SOCKETS:
                ws = v2_socket(s)
                next_frame(ws, "a v2 snapshot", lambda m: m.get("type") == "snapshot")
                sockets.append(ws)
            return None
        wds = until(f"sockets on {args.spread} WDS nodes", spread)
        print(f"compose_check: {len(sockets)} sockets spread over WDS nodes: "
              f"{[(n['id'], n['sessions']) for n in wds['nodes']]}")
    for i, ws in enumerate(sockets):
        m = next_frame(ws, f"an update on v2 socket {i + 1}", lambda m: m.get("type") == "update")
        if not isinstance(m.get("data"), list) or not m["data"]:
            fail(f"v2 update without scanner rows: {str(m)[:200]}")
    print(f"compose_check: {len(sockets)} v2 sockets receive {TOPIC} updates")

    # v1: the reference protocol; pushes are the payload itself (a JSON array of rows).
    with connect(s.ws_url("/ws"), open_timeout=15) as v1:
        v1.send(json.dumps({"action": "auth", "api_key": s.token()}))
        if json.loads(v1.recv(timeout=15)) != {"status": "authorized"}:
            fail("v1: not authorized")
        v1.send(json.dumps({"action": "subscribe", "feed": TOPIC}))
        next_frame(v1, "v1 subscribed", lambda m: isinstance(m, dict) and m.get("status") == "subscribed")
        next_frame(v1, "a v1 scanner push", lambda m: isinstance(m, list) and len(m) > 0)
    print(f"compose_check: a v1 socket receives {TOPIC} pushes")
    for ws in sockets:
        ws.close()

    # News: simulator -> listener -> RabbitMQ `news` -> processor -> Redis -> WDS, on a
    # socket of its own (the scanner sockets, unread, are closed first).
    with v2_socket(s, NEWS_TOPIC) as ws:
        m = next_frame(ws, "a news article", lambda m: m.get("topic") == NEWS_TOPIC and (
            (m.get("type") == "update" and isinstance(m.get("data"), dict))
            or (m.get("type") == "snapshot" and isinstance(m.get("data"), list) and m["data"])))
        article = m["data"] if isinstance(m["data"], dict) else m["data"][0]
        if not article.get("link") or not article.get("title"):
            fail(f"news without link or title: {str(article)[:200]}")
        print(f"compose_check: news arrives on {NEWS_TOPIC}: {article['title']!r}")


def nodes(args):
    s = Session(args.url)
    want = dict(kv.split("=") for kv in args.expect)

    def seen():
        listed = s.call("GET", "/api/control/nodes")["nodes"]
        live = [n for n in listed if n.get("heartbeat_age_ms", 1e9) < 15000]
        counts = {r: sum(1 for n in live if n["role"] == r) for r in want}
        return counts if all(counts[r] >= int(n) for r, n in want.items()) else None

    print(f"compose_check: live nodes {until(f'nodes {want}', seen)}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    st = sub.add_parser("stream")
    st.add_argument("url")
    st.add_argument("--sockets", type=int, default=1)
    st.add_argument("--spread", type=int, default=0)
    st.set_defaults(run=stream)
    nd = sub.add_parser("nodes")
    nd.add_argument("url")
    nd.add_argument("expect", nargs="+")
    nd.set_defaults(run=nodes)
    args = p.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
