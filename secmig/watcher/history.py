"""When did each instance last move: Watcher's own record of actions.

The decision engine has Watcher's database: every ``migrate`` action an
applier ran (or is running) is there with its instance and time. That is
the history the cooldown and back-off rules read, so an instance moved by
an earlier audit is recognised whichever strategy moved it.
"""

import collections
import datetime

from watcher import objects

#: Action states that count as a migration that happened (or is under way).
COUNTED = (objects.action.State.SUCCEEDED, objects.action.State.ONGOING)


def _epoch(value):
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    return value.timestamp()


def from_watcher_db(context, since):
    """``{instance uuid: [POSIX times]}`` of migrations after ``since``."""
    moves = collections.defaultdict(list)
    for state in COUNTED:
        for action in objects.Action.list(context,
                                          filters={'state': state},
                                          sort_key='created_at',
                                          sort_dir='desc'):
            if action.action_type != 'migrate':
                continue
            when = _epoch(action.updated_at or action.created_at)
            if when is None or when < since:
                continue
            uuid = (action.input_parameters or {}).get('resource_id')
            if uuid:
                moves[uuid].append(when)
    return {k: sorted(v) for k, v in moves.items()}
