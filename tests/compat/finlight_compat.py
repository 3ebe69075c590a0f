"""Drives the official Finlight Python client (PyPI `finlight-client`) against a running
simulator's news stream.

Usage: python finlight_compat.py PORT

Checks that the real client connects over plain ws:// to /finlight, is admitted, parses
enhanced articles into its models (companies with their listings included) and raw articles
from /finlight/raw, that a second connection with takeover preempts the first (which stops),
and that a bad key is refused at the handshake with 401. Exits non-zero on any failure.
"""

import asyncio
import sys

import websockets
from finlight_client import ApiConfig, FinlightApi
from finlight_client.models import (
    GetArticlesWebSocketParams,
    GetRawArticlesWebSocketParams,
)

DEADLINE_S = 60


def api(port: int, takeover: bool = False, key: str = "demo") -> FinlightApi:
    config = ApiConfig(api_key=key, wss_url=f"ws://127.0.0.1:{port}/finlight")
    return FinlightApi(config=config, websocket_takeover=takeover)


async def collect(client, params, want: int) -> list:
    """Runs `client.connect` until `want` articles arrived, then cancels it."""
    got = []
    enough = asyncio.Event()

    def on_article(a):
        got.append(a)
        if len(got) >= want:
            enough.set()

    task = asyncio.create_task(client.connect(params, on_article))
    try:
        await asyncio.wait_for(enough.wait(), timeout=DEADLINE_S)
    except asyncio.TimeoutError:
        raise SystemExit(f"FAIL: {len(got)} of {want} articles within {DEADLINE_S}s")
    finally:
        client.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return got


async def enhanced_articles_are_parsed(port: int) -> None:
    client = api(port).websocket
    params = GetArticlesWebSocketParams(includeEntities=True)
    articles = await collect(client, params, 5)
    tagged = [a for a in articles if a.companies]
    if not tagged or not tagged[0].companies[0].primaryListing:
        raise SystemExit(f"FAIL: no company with a listing in {articles}")
    if client.lease_id is None:
        raise SystemExit("FAIL: never admitted (no leaseId)")
    a = tagged[0]
    print(f"ok: enhanced article parsed: {a.title!r} ({a.companies[0].primaryListing.exchangeCode}: {a.companies[0].ticker})")


async def tickers_filter_applies(port: int) -> None:
    first = (await collect(api(port).websocket, GetArticlesWebSocketParams(), 1))[0]
    ticker = first.companies[0].ticker
    params = GetArticlesWebSocketParams(tickers=[ticker])
    articles = await collect(api(port).websocket, params, 2)
    if any(a.companies[0].ticker != ticker for a in articles):
        raise SystemExit(f"FAIL: asked for {ticker}, got {[a.companies[0].ticker for a in articles]}")
    print(f"ok: tickers filter: only {ticker}")


async def raw_articles_are_parsed(port: int) -> None:
    client = api(port).raw_websocket
    articles = await collect(client, GetRawArticlesWebSocketParams(), 2)
    print(f"ok: raw article parsed: {articles[0].title!r}")


async def takeover_preempts_the_older(port: int) -> None:
    older = api(port).websocket
    older_task = asyncio.create_task(
        older.connect(GetArticlesWebSocketParams(), lambda a: None)
    )
    for _ in range(DEADLINE_S * 10):
        if older.lease_id is not None:
            break
        await asyncio.sleep(0.1)
    else:
        raise SystemExit("FAIL: the first connection was never admitted")
    newer = api(port, takeover=True).websocket
    articles = await collect(newer, GetArticlesWebSocketParams(), 1)
    try:
        # Preempted, the official client stops for good: its connect() returns.
        await asyncio.wait_for(older_task, timeout=DEADLINE_S)
    except asyncio.TimeoutError:
        raise SystemExit("FAIL: the older connection was not preempted")
    print(f"ok: takeover preempted the older connection; the newer got {articles[0].title!r}")


async def bad_key_is_refused(port: int) -> None:
    try:
        async with websockets.connect(
            f"ws://127.0.0.1:{port}/finlight", additional_headers={"x-api-key": "nope"}
        ):
            pass
    except websockets.exceptions.InvalidStatus as e:
        if e.response.status_code == 401:
            print("ok: bad key refused with 401")
            return
        raise SystemExit(f"FAIL: bad key got {e.response.status_code}")
    raise SystemExit("FAIL: bad key was admitted")


def main() -> None:
    port = int(sys.argv[1])
    for check in (
        enhanced_articles_are_parsed,
        tickers_filter_applies,
        raw_articles_are_parsed,
        takeover_preempts_the_older,
        bad_key_is_refused,
    ):
        asyncio.run(check(port))
    print("finlight-compat: 5 passed, 0 failed")


if __name__ == "__main__":
    main()
