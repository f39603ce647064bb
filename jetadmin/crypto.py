"""Secrets at rest: MultiFernet over ``JETADMIN_ENCRYPTION_KEYS`` — the first key encrypts, every key
decrypts, so keys rotate by putting a new one first, running ``manage.py rotate_encryption_keys``
(re-encrypts every registered field with the first key) and then dropping the old one.

Apps register their encrypted columns with :func:`register_field` (in ``AppConfig.ready``); the
rotation command walks that list. The embedded default keeps a generated key in the data dir
(``settings.JETADMIN_ENCRYPTION_KEY_FILE``); ``manage.py serve`` says where.
"""

from __future__ import annotations

import functools

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

ENCRYPTED_FIELDS: list[tuple[str, str]] = []  # ("app_label.Model", "field name")


class DecryptionFailed(Exception):
    """A stored secret could not be decrypted with any configured key."""


def register_field(model: str, field: str) -> None:
    if (model, field) not in ENCRYPTED_FIELDS:
        ENCRYPTED_FIELDS.append((model, field))


@functools.lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key.encode()) for key in keys])


def _current() -> MultiFernet:
    return _fernet(tuple(settings.JETADMIN_ENCRYPTION_KEYS))


def encrypt(plain: str) -> str:
    return _current().encrypt(plain.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _current().decrypt(token.encode()).decode()
    except InvalidToken:
        raise DecryptionFailed(
            "A stored secret cannot be decrypted with the configured JETADMIN_ENCRYPTION_KEYS "
            "(was a key dropped before `manage.py rotate_encryption_keys` ran?)."
        ) from None


def rotate(token: str) -> str:
    """The same secret, encrypted with the first key."""
    try:
        return _current().rotate(token.encode()).decode()
    except InvalidToken:
        raise DecryptionFailed("A stored secret cannot be decrypted with any configured key.") from None


def new_key() -> str:
    return Fernet.generate_key().decode()
