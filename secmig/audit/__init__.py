"""The tamper-evident audit trail of migrations.

Every step of a migration becomes a CADF event (:mod:`.events`), appended
durably to a local hash-chained journal signed with the host key
(:mod:`.journal`, line format in :mod:`.lines`, keys in :mod:`.signing`),
then delivered as an oslo.messaging notification (:mod:`.delivery`).
:mod:`.verify` checks a journal end to end; :mod:`.trail` is the small
API the enforcement points call.
"""
