"""The transcript hash and exactly what each signature covers.

The transcript is a hash chain over the messages exchanged so far, each
length-prefixed::

    H0 = SHA-256("secmig-auth/1")
    Hk = SHA-256(H(k-1) || len(mk) || mk)        (mk: message k, signed)

The signature in message k covers::

    "secmig-auth/1" 0x00 label_k 0x00 SHA-256(H(k-1) || len(bk) || bk)

where ``bk`` is message k without its signature and ``label_k`` names the
sender's role and the step (:data:`LABELS`). Because every signature
covers the hash of all earlier messages, a message cannot be moved into
another session; because it covers the role label, a signature made as
initiator never verifies as responder (reflection), nor one made for
step 1 as step 3. Only 32 bytes of chaining state need to be kept
between messages.
"""

import hashlib

PROTOCOL = b'secmig-auth/1'

#: Message type -> the label its sender signs under.
LABELS = {
    'auth1': b'initiator hello',
    'auth2': b'responder reply',
    'auth3': b'initiator confirm',
}


def initial():
    """H0, the chaining value before any message."""
    return hashlib.sha256(PROTOCOL).digest()


def _chain(previous, data):
    return hashlib.sha256(
        previous + len(data).to_bytes(4, 'big') + data).digest()


def absorb(previous, message_bytes):
    """The next chaining value after the full (signed) message."""
    return _chain(previous, message_bytes)


def to_be_signed(previous, message_type, body_bytes):
    """The exact bytes the sender of ``body_bytes`` signs."""
    return (PROTOCOL + b'\x00' + LABELS[message_type] + b'\x00'
            + _chain(previous, body_bytes))
