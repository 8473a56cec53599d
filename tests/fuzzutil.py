"""What the property-based tests of untrusted input share.

Runs are bounded and derandomised, so that the suite is repeatable and
its time does not grow with the machine's luck.
"""

from hypothesis import HealthCheck
from hypothesis import settings
from hypothesis import strategies as st


def bounded(max_examples):
    """Hypothesis settings: ``max_examples``, no deadline, repeatable."""
    return settings(max_examples=max_examples, deadline=None, database=None,
                    derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.data_too_large])


def json_values(finite=False):
    """Any small JSON value.

    Floats include the infinities (``Infinity`` as Python's json writes
    them, which strict JSON refuses) unless ``finite``.
    """
    leaf = (st.none() | st.booleans() | st.integers()
            | st.floats(allow_nan=False, allow_infinity=not finite)
            | st.text(max_size=40))
    return st.recursive(
        leaf, lambda inner: st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=10), inner, max_size=4),
        max_leaves=12)


@st.composite
def mutations(draw, data):
    """``data`` with one byte replaced, inserted or deleted, or cut."""
    kind = draw(st.sampled_from(('replace', 'insert', 'delete', 'cut')))
    i = draw(st.integers(0, len(data) - 1))
    if kind == 'replace':
        byte = draw(st.integers(0, 255).filter(lambda b: b != data[i]))
        return data[:i] + bytes([byte]) + data[i + 1:]
    if kind == 'insert':
        return data[:i] + bytes([draw(st.integers(0, 255))]) + data[i:]
    if kind == 'delete':
        return data[:i] + data[i + 1:]
    return data[:i]
