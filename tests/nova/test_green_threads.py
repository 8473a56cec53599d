"""The nova tier's services run on green threads, as in Nova's own tests.

Nova's functional test package monkey-patches on import; this tier's
package does so first (``tests/nova/__init__.py``, and
``secmig/nova/cloud.py`` for the demo), because it imports nova before
Nova's test package. If oslo.db were imported before the patch, its
per-thread transaction state would be shared by every green thread, and a
context used by two of them (a scatter-gather over cells beside a
periodic task) would fail in Nova with "Can't upgrade a READER
transaction to a WRITER mid-transaction".
"""

import eventlet
from oslo_db.sqlalchemy import enginefacade
import testtools


@enginefacade.transaction_context_provider
class _Context:
    pass


class GreenThreadTransactionsTest(testtools.TestCase):

    def test_green_threads_sharing_a_context_keep_their_transactions(self):
        # Given one context, read in a green thread that stays open
        facade = enginefacade.transaction_context()
        facade.configure(connection='sqlite://')
        context = _Context()
        reading, done = eventlet.event.Event(), eventlet.event.Event()

        def reader():
            with facade.reader.using(context):
                reading.send()
                done.wait()

        thread = eventlet.spawn(reader)
        reading.wait()
        # when another green thread writes with it, its transaction is
        # its own: no "Can't upgrade a READER transaction" TypeError.
        try:
            with facade.writer.using(context) as session:
                self.assertIsNotNone(session)
        finally:
            done.send()
            thread.wait()
