"""AAA plugins: authentication, authorization and accounting (the ``local`` plugin arrives with
the control API)."""

from typing import Protocol


class PasswordHasher(Protocol):
    def hash(self, password: str) -> str: ...

    def verify(self, password: str, hashed: str) -> bool: ...
