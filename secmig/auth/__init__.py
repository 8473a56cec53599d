"""Mutual authentication of the two hosts of a live migration.

Before a migration the source and destination compute hosts run a
three-message handshake (see ``doc/protocol.rst``): each proves that it
holds the private key of a valid host certificate, bound to this very
migration. The package is transport-free: messages are opaque byte
strings that an adapter carries over any channel, trusted or not.

- :mod:`secmig.auth.binding`: what a handshake is bound to.
- :mod:`secmig.auth.messages`: the strict wire codec.
- :mod:`secmig.auth.transcript` and :mod:`secmig.auth.signing`: what is
  signed and how.
- :mod:`secmig.auth.handshake`: the initiator and responder.
- :mod:`secmig.auth.answering`: the source's side, the handshakes it
  keeps waiting per instance and destination.
- :mod:`secmig.auth.replay` and :mod:`secmig.auth.sessions`: bounded
  state a host keeps.
- :mod:`secmig.auth.credentials`: a host's certificate and key.
"""
