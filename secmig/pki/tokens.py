"""One-time enrollment tokens.

The CA hands a token to the operator who enrolls a host; the host's CSR
is signed only against a valid token. The CA keeps the SHA-256 hash of
each token, never the token itself, with what the token approves: the
host name, its other names and addresses, and its clearance. A token
expires and is consumed by its first use. Its record is kept until
``FORGET_AFTER`` seconds past its expiry, so that a token replayed
meanwhile is refused as used or expired; after that it is unknown, and
the store holds only the tokens of recent enrollments however many
hosts the CA has enrolled.
"""

import hashlib
import json
import os
import secrets

from secmig import exception
from secmig.pki import fileio

DEFAULT_TTL = 3600
#: Seconds past its expiry after which a token's record is dropped.
FORGET_AFTER = 86400
#: The longest token a token file may hold (the CA's have 64 characters).
MAX_TOKEN = 256


def _digest(token):
    return hashlib.sha256(token.encode('utf-8')).hexdigest()


def read_token(data, path='<token file>'):
    """The token a token file holds: one line of printable ASCII.

    Surrounding white space (the final newline) is dropped.

    :raises PKIError: ``bad_token_file``: empty, more than one line, not
        printable ASCII, or longer than ``MAX_TOKEN``
    """
    text = data.strip(b' \t\r\n')
    if not text:
        problem = 'it is empty'
    elif len(text) > MAX_TOKEN:
        problem = 'it is longer than %d characters' % MAX_TOKEN
    elif not all(0x21 <= byte <= 0x7e for byte in text):
        problem = ('it holds more than one line, spaces or characters that '
                   'are not printable ASCII')
    else:
        return text.decode('ascii')
    raise exception.PKIError(
        '%s does not hold an enrollment token: %s' % (path, problem),
        code='bad_token_file')


class TokenStore:
    """Token records in a JSON file; callers hold the CA lock."""

    def __init__(self, path):
        self.path = path

    def _load(self):
        if not os.path.exists(self.path):
            return {}
        try:
            return json.loads(fileio.read_bytes(self.path, 'token store'))
        except ValueError as e:
            raise exception.PKIError(
                'token store %s is corrupt: %s' % (self.path, e),
                code='corrupt_ca_state') from e

    def _save(self, records, now):
        records = {digest: record for digest, record in records.items()
                   if record['expires_at'] + FORGET_AFTER > now}
        fileio.write_atomic(self.path, fileio.json_bytes(records),
                            mode=0o600, overwrite=True)

    def create(self, host, names, addresses, clearance, now, ttl=DEFAULT_TTL):
        """Return a new token approving a certificate for ``host``."""
        if ttl <= 0:
            raise exception.PKIError('token lifetime must be positive',
                                     code='bad_ttl')
        # Hex: a token never starts with '-', which a shell or argparse would
        # take for an option.
        token = secrets.token_hex(32)
        records = self._load()
        records[_digest(token)] = {
            'host': host, 'names': sorted(set(names) | {host}),
            'addresses': sorted(set(addresses)), 'clearance': clearance,
            'expires_at': now + ttl, 'used_at': None}
        self._save(records, now)
        return token

    def check(self, token, now):
        """Return what ``token`` approves, or raise ``PKIError``.

        Codes: ``token_unknown``, ``token_used``, ``token_expired``.
        """
        record = self._load().get(_digest(token or ''))
        if record is None:
            raise exception.PKIError(
                'enrollment token is not known to this CA (a token is '
                'forgotten %d hours after it expires)'
                % (FORGET_AFTER // 3600), code='token_unknown')
        if record['used_at'] is not None:
            raise exception.PKIError(
                'enrollment token for %s was already used; create a new '
                'one with "secmig pki token-create"' % record['host'],
                code='token_used')
        if now >= record['expires_at']:
            raise exception.PKIError(
                'enrollment token for %s expired; create a new one'
                % record['host'], code='token_expired')
        return dict(record)

    def mark_used(self, token, now):
        """Consume a token that :meth:`check` accepted."""
        records = self._load()
        records[_digest(token)]['used_at'] = now
        self._save(records, now)
