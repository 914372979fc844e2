"""An engine's lease holding in a process of its own, for ``test_leases.py`` (an ``flock`` or a
PostgreSQL session belongs to its process: only a real second process shows what another
engine sees, and only a real SIGKILL shows what a killed engine leaves behind).

``python _lease_holder.py DATABASE_URL [PORTFOLIO_ID ...]``: starts a LeaseManager (announcing
API port 8123), acquires the portfolios, prints one JSON line ``{"owner", "tokens"}``
(tokens by portfolio id, null when another engine holds it) and waits to be killed. When the
database is in use it prints ``{"held": message}`` and exits with status 2.
"""

import json
import sys

import anyio

from lts.errors import LeaseHeld
from lts.persistence.db import make_engine
from lts.persistence.leases import LeaseManager

API_PORT = 8123


async def main(url: str, portfolio_ids: list[int]) -> int:
    engine = make_engine(url)
    leases = LeaseManager(engine)
    try:
        await leases.start()
    except LeaseHeld as err:
        print(json.dumps({"held": str(err)}), flush=True)
        await engine.dispose()
        return 2
    await leases.set_api_port(API_PORT)
    tokens = {}
    for pid in portfolio_ids:
        lease = await leases.acquire(pid)
        tokens[pid] = None if lease is None else lease.token
    print(json.dumps({"owner": leases.owner, "tokens": tokens}), flush=True)
    await anyio.sleep_forever()
    return 0


if __name__ == "__main__":
    sys.exit(anyio.run(main, sys.argv[1], [int(a) for a in sys.argv[2:]]))
