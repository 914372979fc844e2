"""The API's share of the engine's loop: at most so many HTTP connections are read in one turn of
the event loop; the others wait, unread, for a later turn (architecture §4).

Where it sits: under uvicorn's HTTP protocol, before a byte is parsed (``api`` core plugin).
Everything that is ready runs in one turn of the loop, before the next I/O poll; a request
answered from memory runs start to finish in one step. So a burst of 64 requests (or 64
refusals: a flood that ignores ``Retry-After``) is 64 steps in one turn, about 10 ms here, which
a bar arriving with them waits behind, once for its feed task and again for its portfolio's
runner. The gate bounds that work per turn instead of the number of requests: the bytes of a
connection that has data when this turn's reads are used up are held, unparsed, and parsed in a
later turn, in arrival order; if more comes meanwhile (a client that does not wait for its
answers), the connection stops being read (``pause_reading``: the bytes stay in the kernel, the
client waits, as behind any busy server) until its turn. Trading runs between turns; the API
loses a little throughput at full load (measured here with one read per turn: about 10% fewer
requests per second, while a saturating load's tick p99 fell from 12 to 5 ms).

A turn is counted from the first read after the previous one: that read schedules the next
turn's release with ``call_soon``, which runs after everything already ready, that is in the
loop's next turn.
"""

import asyncio
from collections import deque
from typing import Protocol


class _Held(Protocol):
    def release(self) -> None: ...


class TurnGate:
    def __init__(self, per_turn: int) -> None:
        assert per_turn > 0, per_turn
        self.per_turn = per_turn
        self._used = 0  # reads in this turn
        self._turn_pending = False
        self._held: deque[_Held] = deque()

    @property
    def held(self) -> int:
        """Connections waiting to be read."""
        return len(self._held)

    def take(self) -> bool:
        """A read in this turn, if one is left and nobody is waiting for one."""
        if self._held or self._used >= self.per_turn:
            return False
        self._count_read()
        return True

    def hold(self, conn: _Held) -> None:
        """``conn`` is read (its ``release``) in a later turn."""
        self._held.append(conn)
        self._arm()

    def forget(self, conn: _Held) -> None:
        """``conn`` closed while it waited (it is still held)."""
        self._held.remove(conn)

    def _count_read(self) -> None:
        self._used += 1
        self._arm()

    def _arm(self) -> None:
        if not self._turn_pending:
            self._turn_pending = True
            asyncio.get_running_loop().call_soon(self._next_turn)

    def _next_turn(self) -> None:
        self._turn_pending = False
        self._used = 0
        while self._held and self._used < self.per_turn:
            conn = self._held.popleft()
            self._count_read()
            conn.release()


def gated(protocol: type[asyncio.Protocol], gate: TurnGate) -> type[asyncio.Protocol]:
    """``protocol`` (uvicorn's HTTP protocol class) with its reads going through ``gate``."""

    class Gated(protocol):  # type: ignore[valid-type,misc]
        _unread = b""
        _waiting = False  # held by the gate, with ``_unread`` not parsed yet
        _paused = False  # more came while waiting: reading paused

        def data_received(self, data: bytes) -> None:
            if self._waiting:  # a client that does not wait for its answer: stop reading it
                self._unread += data
                if not self._paused:
                    self._paused = True
                    self.transport.pause_reading()
                return
            if gate.take():
                super().data_received(data)
                return
            # An HTTP/1.1 client sends its request and waits for the answer: holding the bytes
            # is enough, without a system call to stop reading the socket
            self._unread, self._waiting = data, True
            gate.hold(self)

        def release(self) -> None:
            data, self._unread, self._waiting = self._unread, b"", False
            if self.transport.is_closing():
                return
            if self._paused:
                self._paused = False
                if not self.flow.read_paused:  # uvicorn's own flow control has not paused it
                    self.transport.resume_reading()
            super().data_received(data)

        def connection_lost(self, exc: Exception | None) -> None:
            if self._waiting:
                self._waiting = False
                gate.forget(self)
            super().connection_lost(exc)

    Gated.__name__ = Gated.__qualname__ = f"Gated{protocol.__name__}"
    return Gated

