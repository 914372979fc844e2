"""Persistence: SQLAlchemy 2 async tables, the database factory, repositories and the journal.

The journal writer (Core ``executemany``, group commit) is the hot path; repositories serve
start-up, recovery and the API's CRUD.
"""
