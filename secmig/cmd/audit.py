"""``secmig audit``: placeholder replaced by the audit work in progress."""


def add_parser(subparsers):
    pass
