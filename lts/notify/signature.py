"""How a webhook's request is signed, and how a receiver checks it.

Where it sits: :mod:`lts.notify.webhooks` signs every attempt; a receiver (and the tests) use
:func:`verify`. The signature is HMAC-SHA256 with the webhook's secret over
``<timestamp>.<body>`` (the timestamp in Unix seconds, as sent in ``X-LTS-Timestamp``), sent as
``X-LTS-Signature: v1=<hex>``. Signing the timestamp lets a receiver refuse a replayed request
(older than its tolerance); ``X-LTS-Event-Id`` stays the same on every retry of one
notification, so a receiver can drop one it already has.
"""

import hashlib
import hmac
import time

__all__ = ["ATTEMPT_HEADER", "EVENT_HEADER", "EVENT_ID_HEADER", "SIGNATURE_HEADER",
           "TIMESTAMP_HEADER", "sign", "verify"]

SIGNATURE_HEADER = "X-LTS-Signature"
TIMESTAMP_HEADER = "X-LTS-Timestamp"
EVENT_ID_HEADER = "X-LTS-Event-Id"
EVENT_HEADER = "X-LTS-Event"
ATTEMPT_HEADER = "X-LTS-Attempt"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-LTS-Signature`` value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify(secret: str, timestamp: str, signature: str, body: bytes, *,
           tolerance: float = 300.0, now: float | None = None) -> bool:
    """True when ``signature`` is ``body``'s at ``timestamp`` and that is within ``tolerance``
    seconds of ``now`` (a receiver's check; constant-time comparison)."""
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - ts) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, ts, body), signature)
