"""``secmig policy``: placeholder replaced by the policy work in progress."""


def add_parser(subparsers):
    pass
