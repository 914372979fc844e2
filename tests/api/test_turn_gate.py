"""The read gate (architecture §4: the API shares the loop with trading): at most so many HTTP
connections are read per turn of the event loop, the others later, in arrival order; over real
HTTP nothing is lost, reordered or answered twice, whether clients wait for their answers,
pipeline them, or leave while they wait."""

import asyncio
import socket
from pathlib import Path

import anyio
import pytest

from lts.api.turn_gate import TurnGate

from ._auth import running_api

pytestmark = pytest.mark.anyio


class Turns:
    """Counts the loop's turns: a callback that schedules itself again runs once per turn."""

    def __init__(self) -> None:
        self.count = 0
        self._on = True
        asyncio.get_running_loop().call_soon(self._tick)

    def _tick(self) -> None:
        self.count += 1
        if self._on:
            asyncio.get_running_loop().call_soon(self._tick)

    def stop(self) -> None:
        self._on = False


class Held:
    def __init__(self, name: str, turns: Turns, log: list[tuple[str, int]]) -> None:
        self.name, self.turns, self.log = name, turns, log

    def release(self) -> None:
        self.log.append((self.name, self.turns.count))


async def test_so_many_reads_per_turn_the_rest_in_later_turns_in_arrival_order() -> None:
    turns = Turns()
    await asyncio.sleep(0)
    gate = TurnGate(per_turn=2)
    log: list[tuple[str, int]] = []
    assert gate.take()
    assert gate.take()
    assert not gate.take()  # this turn's reads are used
    for name in "abcde":
        gate.hold(Held(name, turns, log))
    assert not gate.take()  # others wait: a newcomer does not go first
    gate.hold(Held("f", turns, log))
    gone = Held("gone", turns, log)
    gate.hold(gone)
    gate.forget(gone)  # closed while it waited
    assert gate.held == 6
    start = turns.count
    while gate.held:  # noqa: ASYNC110 - each sleep(0) lets the loop take one turn
        await asyncio.sleep(0)
    turns.stop()
    assert [name for name, _ in log] == list("abcdef")
    per_turn: dict[int, list[str]] = {}
    for name, turn in log:
        per_turn.setdefault(turn, []).append(name)
    assert [len(names) for names in per_turn.values()] == [2, 2, 2]
    assert len(set(per_turn)) == 3  # three different turns
    assert min(per_turn) > start
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert gate.take()  # a later turn with nobody waiting: read at once


def _request(n: int) -> bytes:
    return (f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Correlation-Id: request{n:08d}\r\n"
            "\r\n").encode()


def _answers(sock: socket.socket, count: int) -> list[tuple[int, str]]:
    """(status, correlation id) of ``count`` answers read from ``sock``, in order."""
    stream = sock.makefile("rb")
    found = []
    for _ in range(count):
        status = int(stream.readline().split()[1])
        headers = {}
        while (line := stream.readline()) not in (b"\r\n", b""):
            key, _, value = line.decode().partition(":")
            headers[key.strip().lower()] = value.strip()
        stream.read(int(headers["content-length"]))
        found.append((status, headers["x-correlation-id"]))
    return found


def _burst(port: int, clients: int, leavers: int) -> list[list[tuple[int, str]]]:
    """``clients`` connections each send one request at once; ``leavers`` more send one and
    close without reading; then every answer of the staying clients."""
    stay = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(clients)]
    leave = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(leavers)]
    try:
        for n, sock in enumerate(stay + leave):
            sock.sendall(_request(n))
        for sock in leave:
            sock.close()
        return [_answers(sock, 1) for sock in stay]
    finally:
        for sock in stay:
            sock.close()


def _pipelined(port: int, count: int) -> list[tuple[int, str]]:
    """One connection sends ``count`` requests in two writes without waiting for answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        half = count // 2
        sock.sendall(b"".join(_request(n) for n in range(half)))
        sock.sendall(b"".join(_request(n) for n in range(half, count)))
        return _answers(sock, count)


async def test_over_http_every_request_is_answered_once_in_order(tmp_path: Path) -> None:
    async with running_api(tmp_path, api={"requests_per_loop_turn": 1}) as api:
        port = int(api.base.rsplit(":", 1)[1])
        answers = await anyio.to_thread.run_sync(_burst, port, 30, 10)
        assert answers == [[(200, f"request{n:08d}")] for n in range(30)]
        pipelined = await anyio.to_thread.run_sync(_pipelined, port, 40)
        assert pipelined == [(200, f"request{n:08d}") for n in range(40)]
        assert (await api.request("GET", "/healthz")).status == 200  # still serving


class _Transport:
    """The socket's side, as the event loop's transport shows it."""

    def __init__(self) -> None:
        self.reading = True
        self.closing = False

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_closing(self) -> bool:
        return self.closing


class _Parser(asyncio.Protocol):
    """Stands for uvicorn's HTTP protocol: records what it is given to parse."""

    def __init__(self) -> None:
        self.parsed: list[bytes] = []
        self.flow = type("Flow", (), {"read_paused": False})()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.parsed.append(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True


async def test_bytes_wait_unparsed_and_a_client_that_keeps_sending_is_paused() -> None:
    from lts.api.turn_gate import gated

    gate = TurnGate(per_turn=1)
    protocol = gated(_Parser, gate)
    first, second, third = protocol(), protocol(), protocol()
    transports = [_Transport() for _ in range(3)]
    for conn, transport in zip((first, second, third), transports, strict=True):
        conn.connection_made(transport)  # type: ignore[arg-type]
    first.data_received(b"GET /a")  # this turn's read
    second.data_received(b"GET /b")  # held, unparsed, still reading (no system call)
    assert (first.parsed, second.parsed, transports[1].reading) == ([b"GET /a"], [], True)
    second.data_received(b"GET /c")  # more while held: stop reading it
    assert transports[1].reading is False
    third.data_received(b"GET /d")
    third.connection_lost(None)  # left while it waited: forgotten, never parsed
    assert gate.held == 1
    while gate.held:  # noqa: ASYNC110 - each sleep(0) lets the loop take one turn
        await asyncio.sleep(0)
    assert second.parsed == [b"GET /bGET /c"]  # in order, once
    assert transports[1].reading is True
    assert third.parsed == []
