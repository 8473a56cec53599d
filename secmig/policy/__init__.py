"""The migration policy: one file that decides every live migration.

- :mod:`~secmig.policy.facts`: what a decision is made from (requester,
  instance, source and destination host).
- :mod:`~secmig.policy.loader`: reads and validates the YAML file into a
  :class:`~secmig.policy.model.Policy`, or says ``FILE:LINE: problem``.
- :mod:`~secmig.policy.evaluate`: the pure decision function.
- :mod:`~secmig.policy.digest`: the digest naming a policy version.

The guide is ``doc/policy.rst``; a commented example is
``etc/secmig/migration-policy.yaml.sample``.
"""
