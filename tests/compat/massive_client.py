"""Drives the official Massive Python client (PyPI `massive`) against a running simulator.

Usage: python massive_client.py PORT

Checks that the real client library connects over plain ws://, authenticates, subscribes and
parses the simulator's stream into its typed models (trades, quotes, second bars), and that a
bad key surfaces as the client's AuthError. Exits non-zero with a message on any failure.
"""

import asyncio
import sys

from massive import WebSocketClient
from massive.websocket.models import EquityAgg, EquityQuote, EquityTrade

DEADLINE_S = 60


async def stream_is_parsed(port: int) -> None:
    client = WebSocketClient(
        api_key="demo",
        feed=f"127.0.0.1:{port}",
        market="stocks",
        subscriptions=["T.*", "Q.*", "A.*"],
        secure=False,
        max_reconnects=0,
    )
    seen = {}

    async def handle(msgs):
        for m in msgs:
            seen[type(m).__name__] = seen.get(type(m).__name__, 0) + 1
        if all(cls.__name__ in seen for cls in (EquityTrade, EquityQuote, EquityAgg)):
            await client.close()

    try:
        await asyncio.wait_for(client.connect(handle), timeout=DEADLINE_S)
    except asyncio.TimeoutError:
        raise SystemExit(f"FAIL: within {DEADLINE_S}s the client parsed only {seen}")
    print(f"ok: official client parsed {seen}")


async def bad_key_is_auth_error(port: int) -> None:
    client = WebSocketClient(
        api_key="not-a-key", feed=f"127.0.0.1:{port}", market="stocks", secure=False, max_reconnects=0
    )

    async def handle(_msgs):
        pass

    try:
        await asyncio.wait_for(client.connect(handle), timeout=DEADLINE_S)
    except Exception as e:  # the client raises its AuthError with the server's message
        if type(e).__name__ == "AuthError" and "authentication failed" in str(e):
            print("ok: bad key raised AuthError('authentication failed')")
            return
        raise SystemExit(f"FAIL: bad key raised {type(e).__name__}: {e}")
    raise SystemExit("FAIL: bad key did not raise")


def main() -> None:
    port = int(sys.argv[1])
    asyncio.run(stream_is_parsed(port))
    asyncio.run(bad_key_is_auth_error(port))
    print("client-compat: 2 passed, 0 failed")


if __name__ == "__main__":
    main()
