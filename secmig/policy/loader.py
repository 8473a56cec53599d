"""Read, validate and compile the migration policy file.

:func:`load` returns a :class:`~secmig.policy.model.Policy` or raises a
:class:`PolicyError` whose message is ``FILE:LINE: problem``. Nothing
is guessed: unknown keys, duplicate keys, wrong types, numbers out of
range and RBAC rules oslo.policy would not understand are all errors,
and an error refuses every migration (:func:`unavailable`); there is no
fallback to a permissive default.

:class:`PolicySource` serves the file to long-running processes: it
re-reads it only when it changes, and keeps refusing while it is broken.
"""

import dataclasses
import os
import re
import threading

import yaml

from secmig.decision import Decision
from secmig import exception
from secmig.policy import digest as digest_mod
from secmig.policy import evaluate as evaluate_mod
from secmig.policy import model
from secmig.policy import rules as rules_mod

SUPPORTED_VERSIONS = (1,)
MAX_LEVEL = 100
MAX_BANDWIDTH_MIB = 1048576
MAX_COOLDOWN = 30 * 86400
_LEVEL_NAME = re.compile(r'^[a-z][a-z0-9_-]*$')
_TAG = 'tag:yaml.org,2002:'
_TYPE_NAMES = {'int': 'an integer', 'bool': 'a boolean', 'null': 'empty',
               'float': 'a number', 'str': 'a string', 'seq': 'a list',
               'map': 'a mapping', 'timestamp': 'a date'}


class PolicyError(exception.SecmigError):
    """The policy file cannot be used; ``str()`` is ``FILE:LINE: problem``.

    Codes: ``policy_missing``, ``policy_unreadable``, ``policy_syntax``
    (not YAML) and ``policy_invalid`` (YAML, but not a valid policy).
    """

    code = 'policy_invalid'

    def __init__(self, path, problem, line=None, code=None):
        self.path = path
        self.line = line
        self.problem = problem
        where = '%s:%d' % (path, line) if line else path
        super().__init__('%s: %s' % (where, problem), code=code)


def _describe(node):
    if isinstance(node, yaml.MappingNode):
        return 'a mapping'
    if isinstance(node, yaml.SequenceNode):
        return 'a list'
    return _TYPE_NAMES.get(node.tag.replace(_TAG, ''), node.tag)


class _Document:
    """The composed YAML tree of one file, with its path and line map."""

    def __init__(self, path, loader):
        self.path = path
        self.loader = loader
        self.lines = {}

    def fail(self, node, problem):
        raise PolicyError(self.path, problem, node.start_mark.line + 1)

    def scalar(self, node, tag, what, where):
        if not isinstance(node, yaml.ScalarNode) or node.tag != _TAG + tag:
            self.fail(node, '%s must be %s, not %s'
                      % (where, what, _describe(node)))
        return self.loader.construct_object(node)

    def string(self, node, where):
        """Any non-empty scalar, as written (quoting optional)."""
        if (not isinstance(node, yaml.ScalarNode)
                or node.tag == _TAG + 'null'):
            self.fail(node, '%s must be a string, not %s'
                      % (where, _describe(node)))
        if not node.value.strip():
            self.fail(node, '%s must be a non-empty string' % where)
        return node.value

    def integer(self, node, where, minimum, maximum):
        value = self.scalar(node, 'int', 'an integer', where)
        if not minimum <= value <= maximum:
            self.fail(node, '%s must be from %d to %d, not %d'
                      % (where, minimum, maximum, value))
        return value

    def strings(self, node, where):
        if not isinstance(node, yaml.SequenceNode):
            self.fail(node, '%s must be a list of strings, not %s'
                      % (where, _describe(node)))
        return frozenset(self.string(item, where) for item in node.value)


class _Map:
    """One YAML mapping of the policy, checked against its allowed keys."""

    def __init__(self, doc, node, where, allowed, required=()):
        self.doc = doc
        self.where = where
        if not isinstance(node, yaml.MappingNode):
            doc.fail(node, '%s must be a mapping, not %s'
                     % (where or 'the policy', _describe(node)))
        self.nodes = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node,
                                               yaml.ScalarNode) else None
            if key is None:
                doc.fail(key_node, 'keys must be strings')
            name = self.path(key)
            if key in self.nodes:
                doc.fail(key_node, 'duplicate key %r' % name)
            if allowed is not None and key not in allowed:
                doc.fail(key_node, 'unknown key %r (expected one of: %s)'
                         % (name, ', '.join(allowed)))
            self.nodes[key] = value_node
            doc.lines[name] = key_node.start_mark.line + 1
        for key in required:
            if key not in self.nodes:
                doc.fail(node, 'missing required key %r' % self.path(key))

    def path(self, key):
        return '%s.%s' % (self.where, key) if self.where else key

    def get(self, key, convert, default, *args):
        if key not in self.nodes:
            return default
        return convert(self.nodes[key], self.path(key), *args)

    def sub(self, key, allowed, required=()):
        node = self.nodes.get(key)
        if node is None:
            return None
        return _Map(self.doc, node, self.path(key), allowed, required)


class _Builder:
    """Turns the checked mappings into the model, section by section."""

    def __init__(self, doc):
        self.doc = doc
        self.named = {}
        self.level_names = {}

    def boolean(self, node, where):
        return self.doc.scalar(node, 'bool', 'true or false', where)

    def choice(self, node, where, choices):
        value = self.doc.string(node, where)
        if value not in choices:
            self.doc.fail(node, '%s must be one of %s, not %r'
                          % (where, ', '.join(choices), value))
        return value

    def level(self, node, where):
        """A level: an integer from 0 to 100 or a name from mac.levels."""
        if isinstance(node, yaml.ScalarNode) and node.tag == _TAG + 'str':
            if node.value.lower() not in self.level_names:
                self.doc.fail(node, '%s: unknown level %r (defined under '
                              'mac.levels: %s)' % (
                                  where, node.value,
                                  ', '.join(self.level_names) or 'none'))
            return self.level_names[node.value.lower()]
        return self.doc.integer(node, where, 0, MAX_LEVEL)

    def rule(self, node, where):
        text = self.doc.string(node, where)
        try:
            normal, tree = rules_mod.compile_rule(text, self.named)
        except rules_mod.RuleError as e:
            self.doc.fail(node, '%s: %s' % (where, e))
        return model.Rule(normal, rules_mod.evaluator(tree))

    def rules(self, section):
        if section is None:
            return {}
        texts = {name: self.doc.string(node, section.path(name))
                 for name, node in section.nodes.items()}
        try:
            compiled = rules_mod.compile_named(texts)
        except rules_mod.RuleError as e:
            self.doc.fail(section.nodes[e.name],
                          '%s: %s' % (section.path(e.name), e))
        self.named = compiled
        return {name: model.Rule(normal, rules_mod.evaluator(tree))
                for name, (normal, tree) in compiled.items()}

    def mac(self, section):
        if section is None:
            return model.Mac()
        levels = section.sub('levels', None)
        for name, node in (levels.nodes.items() if levels else ()):
            if not _LEVEL_NAME.match(name.lower()):
                self.doc.fail(node, 'mac.levels: %r is not a valid level '
                              'name (letters, digits, "_" and "-", starting '
                              'with a letter)' % name)
            self.level_names[name.lower()] = self.doc.integer(
                node, levels.path(name), 0, MAX_LEVEL)
        s = self.doc.string
        return model.Mac(
            levels=dict(self.level_names),
            default_level=section.get('default_level', self.level, 0),
            flavor_extra_spec=section.get('flavor_extra_spec', s,
                                          'secmig:level'),
            image_property=section.get('image_property', s, 'secmig_level'),
            instance_metadata=section.get('instance_metadata', s,
                                          'secmig:level'))

    def automatic(self, section):
        if section is None:
            return model.Automatic()
        opt_out = section.sub('opt_out', ('projects', 'flavors',
                                          'flavor_extra_spec',
                                          'instance_metadata'))
        s, ss = self.doc.string, self.doc.strings
        kwargs = {}
        if opt_out is not None:
            kwargs = dict(
                opt_out_projects=opt_out.get('projects', ss, frozenset()),
                opt_out_flavors=opt_out.get('flavors', ss, frozenset()),
                flavor_extra_spec=opt_out.get('flavor_extra_spec', s,
                                              'secmig:auto_migrate'),
                instance_metadata=opt_out.get('instance_metadata', s,
                                              'secmig:auto_migrate'))
        return model.Automatic(
            enabled=section.get('enabled', self.boolean, True),
            identify=section.get('identify', self.rule, None), **kwargs)

    def destinations(self, section):
        if section is None:
            return model.Destinations()
        ss = self.doc.strings
        by_level = []
        node = section.nodes.get('by_level')
        if node is not None:
            if not isinstance(node, yaml.SequenceNode):
                self.doc.fail(node, 'destinations.by_level must be a list, '
                              'not %s' % _describe(node))
            for index, item in enumerate(node.value):
                entry = _Map(self.doc, item,
                             'destinations.by_level[%d]' % index,
                             ('min_level', 'aggregates'),
                             ('min_level', 'aggregates'))
                by_level.append(model.LevelAggregates(
                    entry.get('min_level', self.level, 0),
                    entry.get('aggregates', ss, frozenset())))
        return model.Destinations(
            availability_zones=section.get('availability_zones', ss, None),
            aggregates=section.get('aggregates', ss, None),
            same_availability_zone=section.get('same_availability_zone',
                                               self.boolean, False),
            by_level=tuple(by_level))

    def transport(self, section):
        if section is None:
            return model.Transport()
        integer = self.doc.integer
        post_copy = section.get('post_copy', self.choice, 'forbidden',
                                ('allowed', 'forbidden'))
        return model.Transport(
            encryption=section.get('encryption', self.choice,
                                   model.ENCRYPTION_REQUIRED,
                                   (model.ENCRYPTION_REQUIRED,)),
            post_copy=post_copy == 'allowed',
            post_copy_max_level=section.get('post_copy_max_level',
                                            self.level, None),
            max_bandwidth_mib=section.get('max_bandwidth_mib', integer, 0,
                                          0, MAX_BANDWIDTH_MIB),
            automatic_max_bandwidth_mib=section.get(
                'automatic_max_bandwidth_mib', integer, 0, 0,
                MAX_BANDWIDTH_MIB))

    def cooldown(self, section):
        if section is None:
            return model.Cooldown()
        return model.Cooldown(
            seconds=section.get('seconds', self.doc.integer, 0, 0,
                                MAX_COOLDOWN),
            exempt=section.get('exempt', self.rule, None))


_TOP_KEYS = ('version', 'rules', 'rbac', 'automatic', 'mac', 'destinations',
             'transport', 'cooldown')
_SECTION_KEYS = {
    'automatic': ('enabled', 'identify', 'opt_out'),
    'mac': ('levels', 'default_level', 'flavor_extra_spec',
            'image_property', 'instance_metadata'),
    'destinations': ('availability_zones', 'aggregates',
                     'same_availability_zone', 'by_level'),
    'transport': ('encryption', 'post_copy', 'post_copy_max_level',
                  'max_bandwidth_mib', 'automatic_max_bandwidth_mib'),
    'cooldown': ('seconds', 'exempt'),
}


def _build(doc, root):
    top = _Map(doc, root, '', _TOP_KEYS, ('version', 'rbac'))
    version = top.get('version', doc.integer, None, 0, 1 << 30)
    if version not in SUPPORTED_VERSIONS:
        doc.fail(top.nodes['version'], 'unsupported policy version %d '
                 '(supported: %s)' % (version, ', '.join(
                     str(v) for v in SUPPORTED_VERSIONS)))
    builder = _Builder(doc)
    sections = {name: top.sub(name, keys)
                for name, keys in _SECTION_KEYS.items()}
    # Order matters: levels before anything naming a level, named rules
    # before anything referencing them.
    named = builder.rules(top.sub('rules', None))
    mac = builder.mac(sections['mac'])
    rbac_map = top.sub('rbac', ('api', 'watcher'), ('api', 'watcher'))
    rbac = {trigger: rbac_map.get(trigger, builder.rule, None)
            for trigger in ('api', 'watcher')}
    policy = model.Policy(
        source=doc.path, version=version, rules=named, rbac=rbac,
        automatic=builder.automatic(sections['automatic']), mac=mac,
        destinations=builder.destinations(sections['destinations']),
        transport=builder.transport(sections['transport']),
        cooldown=builder.cooldown(sections['cooldown']),
        lines=dict(doc.lines))
    return dataclasses.replace(policy, digest=digest_mod.compute(policy))


def loads(text, path='<string>'):
    """Parse policy ``text``; ``path`` is only used in messages."""
    try:
        # The reader refuses non-printable characters as it is built.
        loader = yaml.SafeLoader(text)
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        problem = ' '.join(part for part in (e.context, e.problem) if part)
        raise PolicyError(path, 'not valid YAML: %s' % problem,
                          mark.line + 1 if mark else None,
                          code='policy_syntax') from e
    except yaml.YAMLError as e:
        raise PolicyError(path, 'not valid YAML: %s' % e,
                          code='policy_syntax') from e
    try:
        if root is None:
            raise PolicyError(path, 'the policy file is empty', 1)
        return _build(_Document(path, loader), root)
    finally:
        loader.dispose()


def load(path):
    """Read and parse the policy file at ``path``.

    :raises PolicyError: the file is missing, unreadable or invalid.
    """
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except FileNotFoundError:
        raise PolicyError(path, 'no such file', code='policy_missing')
    except OSError as e:
        raise PolicyError(path, 'cannot read: %s' % (e.strerror or e),
                          code='policy_unreadable')
    try:
        text = data.decode('utf-8')
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b'\n') + 1
        raise PolicyError(path, 'not UTF-8 text', line,
                          code='policy_unreadable')
    return loads(text, path)


def unavailable(error):
    """The refusal for every migration while the policy cannot be used."""
    return Decision.refuse(
        'policy_unavailable',
        'no migration is allowed while the migration policy is unusable: '
        '%s' % error,
        rule='policy_file', policy_digest=None,
        error_code=getattr(error, 'code', 'error'),
        file=getattr(error, 'path', None), line=getattr(error, 'line', None))


class PolicySource:
    """The policy file of a long-running process, re-read when it changes.

    :meth:`get` costs one ``stat`` while the file is unchanged. A failed
    load is remembered like a good one, so a broken file is not re-parsed
    on every call, and refuses until it is fixed.
    """

    def __init__(self, path):
        self.path = path
        self._lock = threading.Lock()
        self._stamp = None
        self._result = None

    def get(self):
        """The current Policy; raises :class:`PolicyError` when unusable."""
        try:
            st = os.stat(self.path)
            stamp = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        except FileNotFoundError:
            stamp = None
        except OSError:
            stamp = ('error',)
        with self._lock:
            if stamp is None or stamp != self._stamp or stamp == ('error',):
                try:
                    self._result = load(self.path)
                except PolicyError as e:
                    self._result = e
                self._stamp = stamp
            result = self._result
        if isinstance(result, PolicyError):
            raise result
        return result

    def decide(self, request, instance, source, destination, now):
        """Decide one migration under the current policy.

        Returns :func:`~secmig.policy.evaluate.evaluate`'s Decision, or
        :func:`unavailable` when the policy cannot be loaded.
        """
        try:
            policy = self.get()
        except PolicyError as e:
            return unavailable(e)
        return evaluate_mod.evaluate(request, instance, source, destination,
                                     policy, now)
