"""oslo.policy check strings, compiled once and checked strictly.

The policy file writes its RBAC rules in oslo.policy's check language
(``role:admin or (role:manager and project_id:%(project_id)s)``) and
they are evaluated by oslo.policy's own check classes. What this module
adds is strictness at load time: oslo.policy turns a rule it does not
understand into "deny" and logs it, which is safe but hides the typo;
here the same mistakes are errors that name the problem, so that
``secmig policy check`` catches them before a migration is refused.

Beyond syntax, a rule may not use checks that leave the process
(``http:``/``https:`` or stevedore extensions), may only substitute the
target keys that evaluation provides (:data:`TARGET_KEYS`), and may only
reference named rules that exist, without cycles. References are inlined
at compile time, so evaluating a rule needs no enforcer and no lookups.
"""

import ast
import re

from oslo_policy import _checks
from oslo_policy import _parser

#: The keys a rule may substitute with ``%(key)s``. Each is also
#: available as ``target.<key>``.
TARGET_KEYS = ('project_id', 'user_id', 'instance_id', 'flavor',
               'trigger', 'source', 'destination')

_ALLOWED_CHECKS = (_checks.TrueCheck, _checks.FalseCheck,
                   _checks.RoleCheck, _checks.RuleCheck,
                   _checks.GenericCheck, _checks.AndCheck,
                   _checks.OrCheck, _checks.NotCheck)
_KEYWORDS = ('and', 'or', 'not')
_SUBSTITUTION = re.compile(r'%\(([^)]*)\)s|%%')
_NAME = re.compile(r'^[A-Za-z_][A-Za-z0-9_.-]*$')
_KNOWN = frozenset(TARGET_KEYS) | frozenset('target.' + key
                                            for key in TARGET_KEYS)


class RuleError(ValueError):
    """A check string is not a valid migration-policy rule."""


def build_target(values):
    """Return the target dict rules are checked against.

    ``values`` maps each of :data:`TARGET_KEYS` to a string; every key is
    present twice, plain and prefixed with ``target.``.
    """
    target = {}
    for key in TARGET_KEYS:
        value = values.get(key) or ''
        target[key] = value
        target['target.' + key] = value
    return target


def _check_match(match, text):
    for name in _SUBSTITUTION.findall(match):
        if name and name not in _KNOWN:
            raise RuleError(
                'rule %r substitutes unknown key %%(%s)s; known keys: %s'
                % (text, name, ', '.join(TARGET_KEYS)))
    if '%' in _SUBSTITUTION.sub('', match):
        raise RuleError('rule %r: only %%(key)s substitutions are allowed '
                        'in %r (write %%%% for a literal %%)' % (text, match))


def _check_kind(kind, token, text):
    if kind in ('http', 'https'):
        raise RuleError('rule %r: %s checks call out over the network and '
                        'are not allowed in a migration policy'
                        % (text, kind))
    try:
        ast.literal_eval(kind)
        return
    except ValueError:
        pass
    except SyntaxError:
        raise RuleError('rule %r: %r is not a valid check' % (text, token))
    if not _NAME.match(kind):
        raise RuleError('rule %r: %r is not a valid check' % (text, token))


def _check_tokens(text, names):
    """Reject what oslo.policy would silently turn into "deny"."""
    for word in text.split():
        token = word.strip('()')
        if not token or token.lower() in _KEYWORDS or token in ('@', '!'):
            continue
        if token[0] in '"\'' and token[-1] == token[0]:
            raise RuleError('rule %r: quoted string %s is not a check'
                            % (text, token))
        kind, sep, match = token.partition(':')
        if not sep or not kind:
            raise RuleError('rule %r: %r is not a check (expected '
                            'kind:value, "@" or "!")' % (text, token))
        _check_kind(kind, token, text)
        if kind == 'rule' and match not in names:
            raise RuleError('rule %r references rule:%s, which is not '
                            'defined under "rules"' % (text, match))
        _check_match(match, text)


#: The most checks one rule may stand for once the named rules it uses
#: are written out in full. Rules that reference rules can double at
#: each level ("rN: rule:rN-1 or rule:rN-1"): a bound keeps the time to
#: load and to evaluate the policy small, whatever the file says.
MAX_CHECKS = 10000
#: The deepest nesting of and/or/not a rule may have (evaluating a rule
#: takes stack in proportion to it).
MAX_DEPTH = 50


def _children(check):
    if isinstance(check, _checks.NotCheck):
        return [check.rule]
    return list(getattr(check, 'rules', ()))


def expanded_size(tree, sizes=None):
    """The number of checks ``tree`` stands for, written out in full.

    A subtree shared by several references counts each time it is used;
    the work stays linear (sizes are kept by node).
    """
    sizes = {} if sizes is None else sizes
    key = id(tree)
    if key not in sizes:
        sizes[key] = 1 + sum(expanded_size(c, sizes)
                             for c in _children(tree))
    return sizes[key]


def _depth(tree):
    """How deeply ``tree`` nests (iteratively: it may be very deep)."""
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in _children(node))
    return deepest


def _check_size(tree, text):
    """Bound a rule once the rules it references are written out."""
    size = expanded_size(tree)
    if size > MAX_CHECKS:
        raise RuleError('rule %r stands for %d checks once the rules it '
                        'references are written out (at most %d): '
                        'simplify the rules it references'
                        % (text, size, MAX_CHECKS))
    depth = _depth(tree)
    if depth > MAX_DEPTH:
        raise RuleError('rule %r nests and/or/not %d deep once the rules '
                        'it references are written out (at most %d)'
                        % (text, depth, MAX_DEPTH))


def _walk(check):
    yield check
    for child in getattr(check, 'rules', ()):
        yield from _walk(child)
    if isinstance(check, _checks.NotCheck):
        yield from _walk(check.rule)


def parse(text, names=()):
    """Parse ``text`` into an oslo.policy check tree, strictly.

    ``names`` are the named rules ``rule:NAME`` may reference. The tree
    still holds those references; :func:`inline` resolves them.

    :raises RuleError: naming the problem.
    """
    if not isinstance(text, str) or not text.strip():
        raise RuleError('empty rule: write "@" to allow everyone or "!" '
                        'to allow no one')
    _check_tokens(text, names)
    try:
        state = _parser.ParseState()
        for token in _parser._parse_tokenize(text):
            state.shift(token)
        tree = state.result
        if _depth(tree) > MAX_DEPTH:
            raise RecursionError
        nodes = list(_walk(tree))
    except ValueError:
        raise RuleError('rule %r is not valid oslo.policy syntax (check '
                        'the and/or/not operators and parentheses)'
                        % text)
    except RecursionError:
        raise RuleError('rule %r... nests and/or/not more than %d deep'
                        % (text[:80], MAX_DEPTH)) from None
    for node in nodes:
        if not isinstance(node, _ALLOWED_CHECKS):
            raise RuleError('rule %r: check %s is not allowed in a '
                            'migration policy' % (text, node))
    return tree


def references(tree):
    """The names of the rules ``tree`` references with ``rule:NAME``."""
    return {node.match for node in _walk(tree)
            if isinstance(node, _checks.RuleCheck)}


def inline(tree, resolved):
    """Replace every ``rule:NAME`` in ``tree`` with ``resolved[NAME]``.

    ``resolved`` must hold already-inlined trees for every reference;
    the caller orders the named rules so that it does (and so detects
    cycles). Returns the new root.
    """
    if isinstance(tree, _checks.RuleCheck):
        return resolved[tree.match]
    if isinstance(tree, (_checks.AndCheck, _checks.OrCheck)):
        tree.rules = [inline(child, resolved) for child in tree.rules]
    elif isinstance(tree, _checks.NotCheck):
        tree.rule = inline(tree.rule, resolved)
    return tree


def compile_named(texts):
    """Compile the named rules ``{name: text}``.

    Returns ``{name: (normalised text, inlined tree)}``.

    :raises RuleError: with ``.name`` set to the offending rule's name.
    """
    parsed = {}
    for name, text in texts.items():
        try:
            parsed[name] = parse(text, texts)
        except RuleError as e:
            e.name = name
            raise
    normal = {name: str(tree) for name, tree in parsed.items()}
    resolved = {}

    def resolve(name, stack):
        if name in resolved:
            return resolved[name]
        if name in stack:
            e = RuleError('rules %s reference each other in a cycle'
                          % ' -> '.join(stack[stack.index(name):] + [name]))
            e.name = stack[0]
            raise e
        for ref in sorted(references(parsed[name])):
            resolve(ref, stack + [name])
        resolved[name] = inline(parsed[name], resolved)
        try:
            _check_size(resolved[name], texts[name])
        except RuleError as e:
            e.name = name
            raise
        return resolved[name]

    for name in texts:
        resolve(name, [])
    return {name: (normal[name], resolved[name]) for name in texts}


def compile_rule(text, named):
    """Compile one rule against already compiled ``named`` rules.

    Returns ``(normalised text, inlined tree)``.
    """
    tree = parse(text, named)
    normal = str(tree)
    tree = inline(tree, {name: value[1] for name, value in named.items()})
    _check_size(tree, text)
    return normal, tree


def _generic(leaf):
    """A GenericCheck leaf as a function, with its per-call work hoisted.

    oslo.policy's GenericCheck re-parses its kind with ``ast.literal_eval``
    on every call; here that is done once. The comparison itself is
    GenericCheck's own (``_find_in_dict``), so the semantics are
    unchanged; a test compares both on random rules and credentials.
    """
    match = leaf.match
    try:
        literal = str(ast.literal_eval(leaf.kind))
    except ValueError:
        segments = leaf.kind.split('.')
        find = _checks.GenericCheck._find_in_dict

        def generic(target, creds):
            try:
                expected = match % target
            except KeyError:
                return False
            return find(creds, segments, expected)
        return generic

    def generic_literal(target, creds):
        try:
            return match % target == literal
        except KeyError:
            return False
    return generic_literal


def evaluator(tree):
    """Turn an inlined check tree into ``f(target, credentials) -> bool``.

    oslo.policy's And/Or/Not checks call ``inspect.getfullargspec`` on
    every child for every evaluation, which costs more than all the
    checks themselves; these closures combine the same leaves directly.
    Leaves other than generic checks are oslo.policy's check objects.
    """
    if isinstance(tree, _checks.AndCheck):
        children = [evaluator(child) for child in tree.rules]
        return lambda target, creds: all(c(target, creds) for c in children)
    if isinstance(tree, _checks.OrCheck):
        children = [evaluator(child) for child in tree.rules]
        return lambda target, creds: any(c(target, creds) for c in children)
    if isinstance(tree, _checks.NotCheck):
        child = evaluator(tree.rule)
        return lambda target, creds: not child(target, creds)
    if type(tree) is _checks.GenericCheck:
        return _generic(tree)
    return lambda target, creds: bool(tree(target, creds, None))


def check(func, target, credentials):
    """Evaluate a compiled rule; True when the credentials satisfy it."""
    return bool(func(target, credentials))
