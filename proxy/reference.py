"""Reference mode: one switch, `CALLWARDEN_REFERENCE=1`, that turns off every cache and
fast path, so each decision is made the slow, obvious way.

Speed code is fenced by it: every memo, cache and shortcut checks `REFERENCE` and, when
set, takes the path it stands in for. Property tests hold the two equal call by call,
and `make test` runs the end-to-end suites a second time in reference mode, so a fast
path that disagrees with its reference fails CI. Read once at import: a process is in
one mode for its life.
"""

from __future__ import annotations

import os

REFERENCE: bool = os.environ.get("CALLWARDEN_REFERENCE") == "1"
