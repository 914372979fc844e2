"""Password hashing with bcrypt (cost 12 by default). Callers on the event loop run these in a
worker thread: one hash costs a quarter of a second by design. Passwords over 72 UTF-8 bytes are
refused, never silently truncated."""

import bcrypt

MAX_BYTES = 72


class PasswordTooLong(ValueError):
    pass


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
