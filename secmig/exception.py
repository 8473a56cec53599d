"""Errors secmig raises for conditions an operator must fix.

Every error carries a stable ``code`` and a message that says what is
wrong and, where it can, what to do. The command line prints the message
on one line and exits non-zero, without a traceback.
"""


class SecmigError(Exception):
    """Base class; ``code`` is machine-readable, ``str()`` is for people."""

    code = 'error'

    def __init__(self, message, code=None):
        super().__init__(message)
        if code is not None:
            self.code = code


class PKIError(SecmigError):
    """A certificate, key, CSR, token or CA operation cannot proceed."""

    code = 'pki_error'
