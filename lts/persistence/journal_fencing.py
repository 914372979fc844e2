"""The journal's fencing: the lease tokens registered per portfolio, and each batch's check.

Where it sits: the engine registers a portfolio's lease token (:meth:`Fences.fence`, through
:meth:`lts.persistence.journal.Journal.fence`) before trading it under a lease
(:mod:`lts.persistence.leases`); a record enqueued with ``fence=portfolio_id`` carries a guard
(:meth:`Fences.guard`): the portfolio and the token registered then. Each batch's transaction
reads the stored ``lease_token`` of its fenced portfolios (:mod:`lts.persistence.journal_sqlite`,
:mod:`lts.persistence.journal_pg`) and :meth:`FenceCheck.decide` says which records are left out
(:class:`Fencing`); after the commit the journal fails those with
:class:`~lts.errors.LeaseLost` (:func:`lease_errors`) and drops the leases found taken over
(:meth:`Fences.drop_taken`). The rules are in :mod:`lts.persistence.journal`'s docstring.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from lts.errors import LeaseLost
from lts.persistence.journal_records import Guard, Record

__all__ = ["FenceCheck", "Fences", "Fencing", "lease_errors"]

log = logging.getLogger("lts.persistence.journal")  # the journal's logger: one name to follow


@dataclass(frozen=True, slots=True)
class Fencing:
    """What the fence check of one transaction decided."""

    lost: frozenset[int]  # indices of the records left out
    taken: dict[int, int | None]  # leases found taken over: portfolio id -> the stored token
    registered: dict[int, int | None]  # the tokens fenced when the transaction began

    def kept(self, records: Sequence[Record]) -> list[Record]:
        return [record for i, record in enumerate(records) if i not in self.lost]


class FenceCheck:
    """The fenced portfolios of a batch and their tokens registered when it began."""

    __slots__ = ("ids", "registered")

    def __init__(self, registered: dict[int, int | None]) -> None:
        self.registered = registered
        self.ids = sorted(pid for pid, token in registered.items() if token is not None)

    @classmethod
    def of(cls, records: Sequence[Record], fences: Mapping[int, int]) -> FenceCheck | None:
        registered: dict[int, int | None] = {}
        for record in records:
            guard = record[4]
            if guard is not None and guard[0] not in registered:
                registered[guard[0]] = fences.get(guard[0])
        return cls(registered) if registered else None

    def decide(self, records: Sequence[Record], stored: Mapping[int, int]) -> Fencing | None:
        """Given the tokens ``stored`` (read in the transaction), which records are lost."""
        registered = self.registered
        lost = frozenset(
            i for i, record in enumerate(records) if (guard := record[4]) is not None
            and (guard[1] is None or registered[guard[0]] != guard[1]
                 or stored.get(guard[0]) != guard[1]))
        taken = {pid: stored.get(pid) for pid, token in registered.items()
                 if token is not None and stored.get(pid) != token}
        return Fencing(lost, taken, registered) if lost or taken else None


class Fences:
    """The lease token registered per portfolio (owned by the journal, on the event loop)."""

    __slots__ = ("_tokens",)

    def __init__(self) -> None:
        self._tokens: dict[int, int] = {}

    def fence(self, portfolio_id: int, token: int) -> None:
        self._tokens[portfolio_id] = token

    def unfence(self, portfolio_id: int) -> None:
        self._tokens.pop(portfolio_id, None)

    def guard(self, portfolio_id: int) -> Guard:
        """The guard of a record enqueued now with ``fence=portfolio_id``."""
        return portfolio_id, self._tokens.get(portfolio_id)

    def check(self, records: Sequence[Record]) -> FenceCheck | None:
        """The fence check of a batch; None when none of its records is fenced."""
        return FenceCheck.of(records, self._tokens)

    def drop_taken(self, fencing: Fencing, on_lease_lost: Callable[[int], None] | None) -> None:
        """Leases found taken over: unfence them and tell the owner, once each."""
        for pid, stored in fencing.taken.items():
            registered = fencing.registered[pid]
            if self._tokens.get(pid) != registered:
                continue  # unfenced or fenced anew meanwhile: reported already or moot
            del self._tokens[pid]
            log.warning("journal: the lease on portfolio %d is lost: fenced with token %s, the "
                        "database has %s", pid, registered, stored)
            if on_lease_lost is not None:
                try:
                    on_lease_lost(pid)
                except Exception:
                    log.exception("journal: on_lease_lost(%d) failed", pid)


def lease_errors(records: Sequence[Record], fencing: Fencing) -> dict[int, LeaseLost]:
    """One LeaseLost per portfolio with records left out, logged with their count."""
    counts: dict[int, int] = {}
    for i in fencing.lost:
        guard = records[i][4]
        assert guard is not None
        counts[guard[0]] = counts.get(guard[0], 0) + 1
    errors = {}
    for pid, count in counts.items():
        errors[pid] = LeaseLost(f"portfolio {pid}: not written, this engine's lease on the "
                                "portfolio is lost")
        log.info("journal: %d records of portfolio %d left out: its lease is lost", count, pid)
    return errors
