"""``python bench/venue_nodelay.py venue ...``: ``python -m lts.engine venue ...`` with TCP_NODELAY
on the venue's connections, for bench/venue.py.

Why: lts/venue/server.py ``_bind`` makes its listening socket as ``socket(AF_INET, SOCK_STREAM)``
(protocol 0), and asyncio only turns Nagle's algorithm off on sockets whose protocol is
``IPPROTO_TCP`` (``base_events._set_nodelay``). uvicorn writes an answer's head and body apart,
so the body waits for the client's delayed ACK: every answer of the venue as shipped takes
~40-44 ms on Linux, whatever it does. Set on the listening socket, TCP_NODELAY is inherited by
every accepted connection (Linux). Nothing else is changed: the same CLI, the same venue.
"""

import runpy
import socket
import sys

from lts.venue import server

_bind = server._bind


def _bind_nodelay(port: int) -> socket.socket:
    listener = _bind(port)
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return listener


server._bind = _bind_nodelay  # also used when the venue comes back after the `down` fault

if __name__ == "__main__":
    sys.argv[0] = "lts.engine"
    runpy.run_module("lts.engine", run_name="__main__", alter_sys=True)
