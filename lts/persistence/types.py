"""Column types that keep money exact on every database.

SQLite has no exact decimal type (SQLAlchemy's ``Numeric`` stores a float there), so on SQLite
:class:`Money` stores the decimal's text and reads it back exactly; on PostgreSQL it is a real
``NUMERIC(38, 18)``, whose fixed scale pads every value to 18 places: those trailing zeros are
trimmed on read (``0.100000000000000000`` reads as ``0.1``, ``100.000000000000000000`` as
``100``), so a value reads back as the same text on both stores.
"""

from decimal import Decimal
from typing import Any

from sqlalchemy import Numeric, String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine


class Money(TypeDecorator[Decimal]):
    """An exact ``Decimal``: ``NUMERIC(38, 18)`` on PostgreSQL, text on SQLite."""

    impl = Numeric
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(64))
        return dialect.type_descriptor(Numeric(38, 18, asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return str(Decimal(value))
        return Decimal(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        exact = value if isinstance(value, Decimal) else Decimal(str(value))
        return _trimmed(exact) if dialect.name != "sqlite" else exact


def _trimmed(value: Decimal) -> Decimal:
    """``value`` without trailing zeros after the decimal point (never in exponent form for a
    whole number)."""
    exponent = value.as_tuple().exponent
    if not isinstance(exponent, int) or exponent >= 0:
        return value
    normal = value.normalize()
    normal_exponent = normal.as_tuple().exponent
    return normal if isinstance(normal_exponent, int) and normal_exponent < 0 \
        else normal.quantize(Decimal(1))
