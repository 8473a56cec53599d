"""Thin REST access to the cloud's APIs with real Keystone tokens."""

from keystoneauth1 import exceptions as ks_exc
from keystoneauth1.identity import v3
from keystoneauth1 import session as ks_session

import confs


def session(user='admin', project='admin', password=confs.PASSWORD):
    auth = v3.Password(auth_url=confs.url('keystone', '/v3'),
                       username=user, password=password,
                       project_name=project, user_domain_name='Default',
                       project_domain_name='Default')
    return ks_session.Session(auth=auth)


class Client:
    """JSON calls to one service (``service`` in :data:`confs.PORTS`)."""

    def __init__(self, sess, service, headers=None):
        self.sess = sess
        self.base = confs.url(service)
        self.headers = dict(headers or {})

    def call(self, method, path, body=None, ok=(200, 201, 202, 204),
             headers=None, data=None):
        all_headers = dict(self.headers, **(headers or {}))
        try:
            resp = self.sess.request(self.base + path, method,
                                     json=body, data=data,
                                     headers=all_headers,
                                     raise_exc=False)
        except ks_exc.ConnectFailure as e:
            raise ApiError(method, path, None, str(e))
        if resp.status_code not in ok:
            raise ApiError(method, path, resp.status_code, resp.text)
        if resp.content and 'json' in resp.headers.get('content-type', ''):
            return resp.json()
        return None

    def get(self, path, **kw):
        return self.call('GET', path, **kw)

    def post(self, path, body=None, **kw):
        return self.call('POST', path, body, **kw)

    def put(self, path, body=None, **kw):
        return self.call('PUT', path, body, **kw)

    def delete(self, path, **kw):
        return self.call('DELETE', path, **kw)


class ApiError(Exception):
    def __init__(self, method, path, status, text):
        super().__init__('%s %s: %s %s' % (method, path, status, text[:2000]))
        self.status = status
        self.text = text


def nova(sess, microversion='2.30'):
    return Client(sess, 'nova', {
        'OpenStack-API-Version': 'compute %s' % microversion,
        'X-OpenStack-Nova-API-Version': microversion})


def placement(sess, microversion='1.19'):
    return Client(sess, 'placement', {
        'OpenStack-API-Version': 'placement %s' % microversion})
