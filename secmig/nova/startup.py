"""secmig's start in a Nova service, which it must never stop.

A compute host whose secmig is broken keeps running its guests and
answers every live migration with the reason secmig cannot take part
(:mod:`secmig.unavailable`); an ERROR log says why at start. Problems
that the guard can report migration by migration (a policy or host
certificate that cannot be read, a journal that cannot be opened) are
left to it, so that fixing the file is enough, without a restart; they
are logged at start too.
"""

from oslo_log import log as logging

from secmig.auth import credentials
from secmig import exception
from secmig import guard as guard_mod
from secmig.nova import config
from secmig.policy import loader
from secmig import unavailable

LOG = logging.getLogger(__name__)


def compute_guard(nova_conf, host):
    """``(secmig ConfigOpts or None, guard)`` of a compute host.

    Never raises: the guard is an
    :class:`~secmig.unavailable.UnavailableGuard` when secmig.conf is
    invalid or the guard cannot be built.
    """
    try:
        conf = config.load(nova_conf)
    except exception.SecmigError as e:
        return None, unavailable.UnavailableGuard(
            host, refusal(host, e, e.code))
    try:
        guard = guard_mod.HostGuard.from_conf(conf, host)
    except Exception as e:
        # Not a condition secmig expects: keep the traceback.
        LOG.exception("secmig: the guard of %s could not be built", host)
        return conf, unavailable.UnavailableGuard(host, refusal(
            host, 'the guard could not be built from %s: %s: %s'
            % (nova_conf.secmig.config_file, type(e).__name__, e),
            'setup_failed'))
    _log_problems(guard, conf, host)
    return conf, guard


def refusal(host, problem, cause):
    """:func:`secmig.unavailable.refusal`, logged at ERROR."""
    decision = unavailable.refusal(host, problem, cause)
    LOG.error("secmig: %s (%s)", decision.reason, cause)
    return decision


def _log_problems(guard, conf, host):
    """ERROR logs for what will refuse every migration until fixed.

    (The guard logs an audit journal that cannot be opened itself.)
    """
    try:
        guard.policy_source.get()
    except loader.PolicyError as e:
        LOG.error("secmig: every live migration to or from %s will be "
                  "refused until the migration policy is fixed: %s",
                  host, e)
    try:
        credentials.load(conf.pki.cert_dir, host)
    except exception.SecmigError as e:
        LOG.error("secmig: every live migration to or from %s will be "
                  "refused until its certificate and key are usable: %s",
                  host, e)
