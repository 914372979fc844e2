"""Contingent orders as their orders' tags say: brackets, OCO exits and trailing stops.

Where it sits: the engine emulates these for every venue (:mod:`lts.engine.contingent`); what
ties the orders together is written in each order's own ``tag``, so it is durable with the
order's row (write-ahead) and the engine rebuilds it from the open orders after a restart. No
other table, no state that a crash could lose between an order and its link.

Tags (at most 64 characters, the column's size):

- ``bracket tp=<price> sl=<price>``: an entry whose fills get an exit pair;
- ``oco <client order id>``: a member of the exit group named by that id (the bracket's entry,
  or the first order of an OCO pair); one fill of the group's quantity in all;
- ``trail <amount>`` or ``trail <percent>%``: a stop order the engine moves after each bar.
"""

from decimal import Decimal, InvalidOperation

import msgspec

__all__ = ["BRACKET_PREFIX", "MAX_TAG", "OCO_PREFIX", "BracketTag", "OcoTag", "TrailTag",
           "parse_tag"]

MAX_TAG = 64
#: How an exit group member's tag begins (what the ledger counts once per group).
OCO_PREFIX = "oco "
#: How a bracket entry's tag begins.
BRACKET_PREFIX = "bracket "


class BracketTag(msgspec.Struct, frozen=True):
    take_profit: Decimal
    stop_loss: Decimal

    def text(self) -> str:
        return f"{BRACKET_PREFIX}tp={_plain(self.take_profit)} sl={_plain(self.stop_loss)}"


class OcoTag(msgspec.Struct, frozen=True):
    group: str  # the client order id that names the group

    def text(self) -> str:
        return f"{OCO_PREFIX}{self.group}"


class TrailTag(msgspec.Struct, frozen=True):
    amount: Decimal
    percent: bool  # amount is a percentage of the reference price

    def text(self) -> str:
        return f"trail {_plain(self.amount)}{'%' if self.percent else ''}"

    def distance(self, reference: Decimal) -> Decimal:
        """How far from ``reference`` (the best price since placed) the stop sits."""
        return reference * self.amount / 100 if self.percent else self.amount


Contingency = BracketTag | OcoTag | TrailTag


def _plain(number: Decimal) -> str:
    return f"{number.normalize():f}"


def _decimal(text: str) -> Decimal | None:
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() and value > 0 else None


def parse_tag(tag: str) -> Contingency | None:
    """The contingency a tag names, or None for any other tag."""
    head, _, rest = tag.partition(" ")
    if head == "oco" and rest:
        return OcoTag(rest)
    if head == "trail" and rest:
        percent = rest.endswith("%")
        amount = _decimal(rest.removesuffix("%"))
        return None if amount is None else TrailTag(amount, percent)
    if head == "bracket":
        fields = dict(part.partition("=")[::2] for part in rest.split())
        tp, sl = _decimal(fields.get("tp", "")), _decimal(fields.get("sl", ""))
        return None if tp is None or sl is None else BracketTag(tp, sl)
    return None
