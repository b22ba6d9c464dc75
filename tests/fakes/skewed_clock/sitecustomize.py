"""A machine whose wall clock is off by ``SKEWED_CLOCK_SECONDS``, for the Python process that loads this.

Put this folder on PYTHONPATH: Python imports ``sitecustomize`` at start-up, before any other module, so
``time.time()`` and ``datetime.now()`` read the skewed clock everywhere in the process (monotonic time and
timed waits stay true, as they would on a machine whose wall clock is merely set wrong). libfaketime would
be the usual tool, but it breaks Python 3.11's sleeps (EINVAL) and timed waits.
"""

import datetime as _datetime
import os
import time as _time

_offset = float(os.environ.get("SKEWED_CLOCK_SECONDS", "0") or 0)

if _offset:
    _true_time, _true_time_ns = _time.time, _time.time_ns
    _time.time = lambda: _true_time() + _offset
    _time.time_ns = lambda: _true_time_ns() + int(_offset * 1e9)
    _shift = _datetime.timedelta(seconds=_offset)

    class _SkewedDateTime(_datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return super().now(tz) + _shift

        @classmethod
        def utcnow(cls):
            return super().now(_datetime.UTC).replace(tzinfo=None) + _shift

        @classmethod
        def today(cls):
            return cls.now()

    _datetime.datetime = _SkewedDateTime
