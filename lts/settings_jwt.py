"""The JWT signing secret outside ``prod``: generated once per data directory, never the
public placeholder.

Where it sits: beside the settings (:mod:`lts.settings`, whose ``auth.jwt_secret`` it fills in;
the ``prod`` profile's refusal of the placeholder is :func:`lts.settings.check_jwt_secret`),
called at start-up by the command line (:func:`with_generated_jwt_secret`).
"""

import contextlib
import logging
import os
import secrets
from pathlib import Path

from pydantic import SecretStr

from lts.errors import ConfigError
from lts.settings import DEV_JWT_SECRET, Settings

__all__ = ["JWT_SECRET_FILE", "jwt_secret_path", "with_generated_jwt_secret"]

_log = logging.getLogger("lts.settings")


JWT_SECRET_FILE = "jwt-secret"  # noqa: S105 - a file name


def jwt_secret_path(settings: Settings) -> Path:
    """Where a generated JWT secret is kept: beside the SQLite database file (the default one
    in ``database.data_dir``, or the one ``database.url`` names), in ``database.data_dir`` for
    PostgreSQL."""
    from sqlalchemy.engine import make_url  # here: a replay without a database never loads it
    from sqlalchemy.exc import ArgumentError

    db = settings.database
    directory = db.data_dir
    if db.url:
        with contextlib.suppress(ArgumentError):
            url = make_url(db.url)
            if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
                directory = Path(url.database or "").parent
    return directory.expanduser() / JWT_SECRET_FILE


def with_generated_jwt_secret(settings: Settings) -> Settings:
    """Outside ``prod``, the public placeholder JWT secret is never used: a random one is made
    once per data directory (:func:`jwt_secret_path`, mode 0600) and reused, so tokens outlive
    a restart and no one can forge them from the source code. ``prod`` refuses the placeholder
    instead (:func:`lts.settings.check_jwt_secret`); a configured secret is used as it is."""
    if settings.profile == "prod" or \
            settings.auth.jwt_secret.get_secret_value() != DEV_JWT_SECRET:
        return settings
    path = jwt_secret_path(settings)
    try:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            _create_once(path, secrets.token_urlsafe(48))
            # DEBUG: a start that then fails on its database says that in one line
            _log.debug("made a JWT secret in %s (kept for the next starts; the prod profile "
                       "needs auth.jwt_secret set)", path)
        secret = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"setting 'auth.jwt_secret': {path}: {exc.strerror}") from None
    if len(secret) < 32:
        raise ConfigError(f"setting 'auth.jwt_secret': {path} holds fewer than 32 characters "
                          "(delete it to make a new one)")
    auth = settings.auth.model_copy(update={"jwt_secret": SecretStr(secret)})
    return settings.model_copy(update={"auth": auth})


def _create_once(path: Path, text: str) -> None:
    """Write ``path`` (0600) unless it exists, whole or not at all: written aside, then linked
    in place; an engine that started at the same moment and linked first wins."""
    aside = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text + "\n")
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(aside, path)
    finally:
        aside.unlink(missing_ok=True)
