"""Serve one OpenStack WSGI application with gunicorn.

Usage: ``serve.py NAME ADDRESS:PORT MODULE:CALLABLE``

OpenStack applications parse ``sys.argv`` with oslo.config when they
load, so gunicorn's own command line must not reach them: this runs
gunicorn from Python and shows the application only its name.
"""

import importlib
import sys

from gunicorn.app import base
from sqlalchemy import orm


class Server(base.BaseApplication):
    def __init__(self, bind, target):
        self.bind = bind
        self.target = target
        super().__init__()

    def load_config(self):
        for key, value in {'bind': self.bind, 'workers': 1, 'threads': 8,
                           'timeout': 300, 'accesslog': '-',
                           'errorlog': '-', 'control_socket_disable': True
                           }.items():
            self.cfg.set(key, value)

    def load(self):
        module, _, attr = self.target.partition(':')
        factory = attr.endswith('()')
        app = getattr(importlib.import_module(module), attr.rstrip('()'))
        app = app() if factory else app
        # Neutron reads backref attributes (Port.port_forwardings) before
        # its first query would configure the ORM mappers.
        orm.configure_mappers()
        return app


def main():
    name, bind, target = sys.argv[1:4]
    sys.argv = [name]
    Server(bind, target).run()


if __name__ == '__main__':
    main()
