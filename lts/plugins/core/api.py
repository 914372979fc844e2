"""TEMPORARY: the entry point moves to lts.api.server (kept while helpers run old trees)."""

from lts.api.server import ApiServer

__all__ = ["ApiServer"]
