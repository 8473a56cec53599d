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
    """``{instance uuid: [POSIX times]}`` of migrations after ``since``.

    The database is asked only for the actions in a counted state whose
    last change (the start or the end of the migration) is at ``since``
    or later: the read is bounded by the window, not by Watcher's whole
    history. The time of a move is that last change.
    """
    moves = collections.defaultdict(list)
    after = datetime.datetime.fromtimestamp(since, datetime.timezone.utc)
    for action in objects.Action.list(
            context, filters={'state__in': COUNTED,
                              'updated_at__gte': after.replace(tzinfo=None)}):
        if action.action_type != 'migrate':
            continue
        when = _epoch(action.updated_at)
        uuid = (action.input_parameters or {}).get('resource_id')
        if uuid and when is not None and when >= since:
            moves[uuid].append(when)
    return {k: sorted(v) for k, v in moves.items()}
