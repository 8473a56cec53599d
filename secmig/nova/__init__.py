"""Nova adapters: the scheduler filter and the compute-side enforcement.

Only this package imports nova. It stays thin: every decision is made by
the core (``secmig.policy``, ``secmig.auth``, ``secmig.pki``,
``secmig.audit``); this package turns Nova objects into the core's facts
and the core's refusals into Nova exceptions.
"""
