"""Recording stand-ins of the launch API (launch/launch_ros have no wheels), shared by the launch-file tests."""
from __future__ import annotations


class Recorded:
    """Stands in for any launch class: remembers its arguments."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


def walk(value):
    """Every Recorded object inside ``value`` (nested in arguments, lists, tuples and dicts), depth first."""
    if isinstance(value, Recorded):
        yield value
        yield from walk(list(value.args) + list(value.kwargs.values()))
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from walk(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from walk(v)
