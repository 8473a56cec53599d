"""Read an audit journal the way a test asserts on it."""

import json
import os


def journal_steps(path):
    """``[(step, outcome, decision code)]`` of the events in a journal.

    An absent journal has no steps.
    """
    steps = []
    if not os.path.exists(path):
        return steps
    with open(path) as f:
        for line in f:
            body = json.loads(line).get('body', {})
            if 'step' in body:
                reason = body['event'].get('reason', {})
                steps.append((body['step'], body['outcome'],
                              reason.get('reasonCode')))
    return steps


def journal_evidence(path, step):
    """The evidence of each ``step`` event in a journal, in order."""
    found = []
    with open(path) as f:
        for line in f:
            body = json.loads(line).get('body', {})
            if body.get('step') != step:
                continue
            for attachment in body['event'].get('attachments', []):
                if attachment.get('name') == 'secmig.evidence':
                    found.append(attachment['content'])
    return found
