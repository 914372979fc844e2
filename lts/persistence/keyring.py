"""Master keys and AES-256-GCM: how a secret is sealed before it reaches the database.

Sits under :mod:`lts.persistence.credentials` (the store) and is read by
:func:`lts.settings.check_master_key` at start-up. The keys come from the ``master_key`` setting
(``LTS_MASTER_KEY``, or the ``LTS_MASTER_KEY`` file in ``LTS_SECRETS_DIR``), never from the
database: one or more comma-separated ``VERSION:BASE64KEY`` entries, each key 32 random bytes.
The first entry is the current key (new rows are sealed with it); every entry opens rows
sealed under its version, so old rows stay readable until ``keys rotate`` re-seals them.

Each seal draws a fresh random 96-bit nonce and binds the row to its place with associated
data ``"{context}:{version}"`` (the store's context is ``"{user_id}:{broker}"``): a ciphertext
copied to another user, broker or key version fails to open. A :class:`Keyring` keeps no raw
key bytes and its ``repr`` names only the versions; no error message carries key material.
"""

import base64
import binascii
import os
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr

from lts.errors import ConfigError, CredentialError

SETTING = "master_key"
KEY_BYTES = 32
NONCE_BYTES = 12
VERSION_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,16}")


@dataclass(frozen=True)
class Sealed:
    """A sealed secret as the database stores it."""

    key_version: str
    nonce: bytes
    ciphertext: bytes  # AES-GCM output: the encrypted text followed by its 16-byte tag

    def __repr__(self) -> str:
        return f"Sealed(key_version={self.key_version!r}, {len(self.ciphertext)} bytes)"


class Keyring:
    """The configured master keys, by version; the first is the current one."""

    def __init__(self, keys: list[tuple[str, bytes]]) -> None:
        if not keys:
            raise ConfigError(f"setting {SETTING!r}: no key entries")
        self._ciphers: dict[str, AESGCM] = {}
        for version, key in keys:
            if version in self._ciphers:
                raise ConfigError(f"setting {SETTING!r}: key version {version!r} appears twice")
            self._ciphers[version] = AESGCM(key)
        self.current_version = keys[0][0]

    @classmethod
    def parse(cls, text: str) -> "Keyring":
        """``"v2:BASE64,v1:BASE64"`` -> a keyring; a bad entry is one ConfigError line that
        names the entry's position (and its version once that is known to be a version), never
        any part of a key."""
        keys: list[tuple[str, bytes]] = []
        for n, entry in enumerate(text.split(","), start=1):
            version, sep, encoded = entry.strip().partition(":")
            where = f"setting {SETTING!r}, entry {n}"
            if not sep or not VERSION_PATTERN.fullmatch(version):
                raise ConfigError(f"{where}: expected VERSION:BASE64KEY (a version of 1-16 "
                                  "letters, digits, '_', '.' or '-'), entries separated by ','")
            key = _decode(encoded.strip())
            if key is None or len(key) != KEY_BYTES:
                raise ConfigError(f"{where} ({version}): the key must be {KEY_BYTES} random "
                                  "bytes in base64 (`python -m lts.engine keys new` makes one)")
            keys.append((version, key))
        return cls(keys)

    @classmethod
    def from_setting(cls, value: SecretStr | None) -> "Keyring | None":
        """The keyring of the ``master_key`` setting; ``None`` when it is not set."""
        return None if value is None else cls.parse(value.get_secret_value())

    @property
    def versions(self) -> tuple[str, ...]:
        return tuple(self._ciphers)

    def seal(self, plaintext: bytes, context: str) -> Sealed:
        """Encrypt under the current key, bound to ``context`` and the key version."""
        version = self.current_version
        nonce = os.urandom(NONCE_BYTES)
        data = self._ciphers[version].encrypt(nonce, plaintext, _aad(context, version))
        return Sealed(version, nonce, data)

    def open(self, sealed: Sealed, context: str) -> bytes:
        """Decrypt; :class:`~lts.errors.CredentialError` when the version is not configured,
        or the ciphertext was altered or belongs to another context."""
        cipher = self._ciphers.get(sealed.key_version)
        if cipher is None:
            raise CredentialError(f"key version {sealed.key_version!r} is not in setting "
                                  f"{SETTING!r} (configured: {', '.join(self.versions)})")
        try:
            return cipher.decrypt(sealed.nonce, sealed.ciphertext,
                                  _aad(context, sealed.key_version))
        except InvalidTag:
            raise CredentialError("the ciphertext does not open: it was altered, or it belongs "
                                  "to another user or broker") from None

    def __repr__(self) -> str:
        return f"Keyring(versions={list(self.versions)!r})"


def new_key_entry(version: str) -> str:
    """A fresh ``VERSION:BASE64KEY`` entry (32 bytes from the OS's random source)."""
    if not VERSION_PATTERN.fullmatch(version):
        raise ConfigError(f"key version {version!r}: use 1-16 letters, digits, '_', '.' or '-'")
    return f"{version}:{base64.b64encode(os.urandom(KEY_BYTES)).decode()}"


def next_version(keyring: Keyring | None) -> str:
    """``v<N+1>`` after the highest ``v<N>`` configured (``v1`` when there is none)."""
    numbers = [int(v[1:]) for v in (keyring.versions if keyring else ()) if
               re.fullmatch(r"v\d{1,6}", v)]
    return f"v{max(numbers, default=0) + 1}"


def _decode(encoded: str) -> bytes | None:
    """Standard or URL-safe base64 (``openssl rand -base64 32`` works); None if neither."""
    try:
        return base64.b64decode(encoded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        return None


def _aad(context: str, version: str) -> bytes:
    return f"{context}:{version}".encode()
