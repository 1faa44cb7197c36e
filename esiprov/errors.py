"""The root of esiprov's own errors, in two branches: worth retrying, or not.

A step (``tasks.job``) retries a ``Transient`` error with backoff and turns a
``Permanent`` one into ``<ACTION>_FAILED`` at once; the command line prints
either in one line. Each module keeps its own error class (``StoreError``,
``HeatRejected``, ``MappingError`` ...) for its callers, placed under one of
the two branches here, so a new error decides its handling where it is
declared, not in a tuple somewhere else. The broker's errors are kombu's and
redis-py's own (``esiprov.broker.BROKER_ERRORS``): always transient.
"""
from __future__ import annotations


class EsiprovError(Exception):
    """An error esiprov raises on purpose; its message is meant for the operator (no secrets)."""


class Transient(EsiprovError):
    """A service did not answer, or answered "not now" (etcd, Heat): the same call may succeed later."""


class Permanent(EsiprovError):
    """The input is wrong (a config, a template, a mapping, a setting) or a service refused it for good:
    retrying gives the same answer."""
