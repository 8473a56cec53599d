"""The transcript hash and exactly what each signature covers.

The transcript is a hash chain over the bodies of the messages exchanged
so far, each length-prefixed::

    H0 = SHA-256("secmig-auth/2")
    Hk = SHA-256(H(k-1) || len(bk) || bk)

where ``bk`` is message k without its signature, in its one canonical
encoding (:func:`secmig.auth.messages.encode_body`). The signature in
message k covers::

    "secmig-auth/2" 0x00 label_k 0x00 Hk

and ``label_k`` names the sender's role and the step (:data:`LABELS`).

Because every signature covers the hash of all earlier messages, a
message cannot be moved into another session; because it covers the
role label, a signature made as initiator never verifies as responder
(reflection), nor one made for step 1 as step 3.

Signature bytes are never hashed into the chain. Some signatures have
more than one valid encoding that anyone can compute without the key
(ECDSA's ``(r, s)`` and ``(r, n - s)``); were they hashed, a party on the
channel could make the two hosts' transcript hashes differ while every
signature still verified. Everything that is hashed has one encoding
(the codec refuses any other), so both hosts of a handshake that
succeeds hold the same transcript hash, whatever the channel did. Only
32 bytes of chaining state need to be kept between messages.
"""

import hashlib

PROTOCOL = b'secmig-auth/2'

#: Message type -> the label its sender signs under.
LABELS = {
    'auth1': b'initiator hello',
    'auth2': b'responder reply',
    'auth3': b'initiator confirm',
}


def initial():
    """H0, the chaining value before any message."""
    return hashlib.sha256(PROTOCOL).digest()


def absorb(previous, body):
    """The next chaining value after a message body (no signature)."""
    return hashlib.sha256(
        previous + len(body).to_bytes(4, 'big') + body).digest()


def to_be_signed(message_type, chained):
    """The exact bytes the sender of a message signs.

    :param chained: the chaining value after the message's own body
    """
    return PROTOCOL + b'\x00' + LABELS[message_type] + b'\x00' + chained
