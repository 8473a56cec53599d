"""Nova objects turned into the facts the core decides on."""

from nova import objects

from secmig.policy import facts

#: Image properties arrive in system metadata under this prefix.
_IMAGE_PREFIX = 'image_'


def request(context):
    """The requester of a migration (its credentials, not its trigger).

    Whether a request is Watcher's is for the policy's
    ``automatic.identify`` rule to say, from these credentials.
    """
    return facts.Request.from_context(context, trigger='api')


def instance(context, inst):
    """:class:`~secmig.policy.facts.InstanceFacts` of a Nova instance."""
    flavor = inst.flavor
    system_metadata = inst.system_metadata or {}
    image = {k[len(_IMAGE_PREFIX):]: str(v)
             for k, v in system_metadata.items()
             if k.startswith(_IMAGE_PREFIX)}
    return facts.InstanceFacts(
        uuid=inst.uuid, project_id=inst.project_id or '',
        user_id=inst.user_id or '', flavor_name=flavor.name or '',
        flavor_extra_specs=dict(flavor.extra_specs or {}),
        image_properties=image,
        metadata={k: str(v) for k, v in (inst.metadata or {}).items()},
        last_migrated_at=last_migrated_at(context, inst.uuid))


def last_migrated_at(context, instance_uuid):
    """When the instance's last completed live migration began."""
    done = objects.MigrationList.get_by_filters(
        context, {'instance_uuid': instance_uuid,
                  'migration_type': 'live-migration',
                  'status': 'completed'},
        sort_keys=['created_at'], sort_dirs=['desc'], limit=1)
    if not done:
        return None
    return done[0].created_at.timestamp()


#: Statuses of a live migration between its acceptance by the conductor
#: and the end of its copy.
_ACTIVE = ['accepted', 'queued', 'preparing', 'running', 'post-migrating']


def migration_id(context, instance_uuid):
    """The uuid of the instance's live migration under way, or None."""
    migrations = objects.MigrationList.get_by_filters(
        context, {'instance_uuid': instance_uuid,
                  'migration_type': 'live-migration', 'status': _ACTIVE},
        sort_keys=['created_at'], sort_dirs=['desc'], limit=1)
    return migrations[0].uuid if migrations else None
