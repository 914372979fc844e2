"""The operator's web dashboard, served by the API at ``/`` (same origin, auth and roles).

Where it sits: pages and their assets, added to the API app by :func:`add_dashboard`; the pages
read the REST API and follow the WebSocket of committed order events, as any client does.
"""

from fastapi import FastAPI

__all__ = ["add_dashboard"]


def add_dashboard(app: FastAPI) -> None:
    """Put the dashboard's routes on ``app``."""
