"""Password hashing with bcrypt (cost 12 by default), and the strength rule every new password
meets, wherever it comes from: the API (``lts.api.schemas``), ``LTS_ADMIN_PASSWORD`` (checked at
start) and ``users reset-password`` (:mod:`lts.cli.users_command`).

Callers on the event loop run the hashing in a worker thread: one hash costs a quarter of a
second by design. Passwords over 72 UTF-8 bytes are refused, never silently truncated.

The rule: at most 72 UTF-8 bytes, no NUL character, at least 10 characters, and at least three
of lower case, upper case, digits and other characters.
"""

import bcrypt

MAX_BYTES = 72
MIN_CHARS = 10


class PasswordTooLong(ValueError):
    pass


class WeakPassword(ValueError):
    """A new password that breaks the strength rule; the message says which part."""


def fits_bcrypt(password: str) -> str:
    """``password``, if bcrypt can take it whole; WeakPassword otherwise."""
    if len(password.encode()) > MAX_BYTES:
        raise WeakPassword(f"at most {MAX_BYTES} UTF-8 bytes")
    if "\x00" in password:
        raise WeakPassword("a NUL character is not allowed")
    return password


def strong_password(password: str) -> str:
    """``password``, if it meets the strength rule; WeakPassword naming what it lacks."""
    fits_bcrypt(password)
    if len(password) < MIN_CHARS:
        raise WeakPassword(f"at least {MIN_CHARS} characters")
    classes = (any(c.islower() for c in password), any(c.isupper() for c in password),
               any(c.isdigit() for c in password), any(not c.isalnum() for c in password))
    if sum(classes) < 3:
        raise WeakPassword("needs three of: lower case, upper case, digits, other characters")
    return password


def hash_password(password: str, rounds: int = 12) -> str:
    raw = password.encode()
    if len(raw) > MAX_BYTES:
        raise PasswordTooLong(f"password longer than {MAX_BYTES} UTF-8 bytes")
    return bcrypt.hashpw(raw, bcrypt.gensalt(rounds)).decode()


def verify_password(password: str, hashed: str) -> bool:
    raw = password.encode()
    if len(raw) > MAX_BYTES:
        return False
    return bcrypt.checkpw(raw, hashed.encode())
