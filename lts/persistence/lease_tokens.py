"""A lease and its fencing token: what taking and releasing a lease write in ``portfolios``.

Where it sits: under :class:`lts.persistence.leases.LeaseManager`, on both stores (the SQLite
path through the engine's pool, PostgreSQL's through the lock connection of
:mod:`lts.persistence.lease_locks`). Taking a lease bumps ``portfolios.lease_token``, committed
with ``lease_owner``, and the :class:`Lease` carries the new token (the journal fences the
portfolio's writes with it, :mod:`lts.persistence.journal_fencing`); releasing it forgets the
owner unless another engine took the portfolio since.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from sqlalchemy import update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from lts.persistence.tables import portfolios

__all__ = ["LOST", "Lease", "bump_token", "clear_owner", "why"]

#: What ends a lease connection's usefulness: database errors, and OSError (which includes the
#: TimeoutError of a bounded wait).
LOST: Final = (SQLAlchemyError, OSError)


@dataclass(frozen=True, slots=True)
class Lease:
    """The right of this engine to trade one portfolio; ``token`` fences its journal writes."""

    portfolio_id: int
    token: int
    owner: str


async def bump_token(conn: AsyncConnection, portfolio_id: int, owner: str) -> int | None:
    """Take the portfolio's fencing token: +1, recorded with the owner; None: no portfolio."""
    token = (await conn.execute(
        update(portfolios).where(portfolios.c.id == portfolio_id)
        .values(lease_token=portfolios.c.lease_token + 1, lease_owner=owner)
        .returning(portfolios.c.lease_token))).scalar()
    await conn.commit()
    return None if token is None else int(token)


async def clear_owner(conn: AsyncConnection, lease: Lease) -> None:
    """Forget the owner of a released lease, unless someone took the portfolio since."""
    await conn.execute(update(portfolios).where(
        portfolios.c.id == lease.portfolio_id, portfolios.c.lease_token == lease.token,
    ).values(lease_owner=None))
    await conn.commit()


def why(err: BaseException) -> str:
    """One line for the log: the first line of ``err``'s message, else its class."""
    return " ".join(str(err).split("\n", 1)[0].split()) or type(err).__name__
