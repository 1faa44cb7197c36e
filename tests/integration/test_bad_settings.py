"""A bad setting stops every esiprov process in one line naming the variable, never a traceback."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from esiprov.devenv.pipeline import ROOT

#: a value esiprov.settings refuses, and the line every process must print for it
BAD = {"ESIPROV_SNMP_PORT": "not-a-port"}
LINE = "esiprov: ESIPROV_SNMP_PORT: 'not-a-port' is not a port (1-65535)"


@pytest.mark.parametrize("argv", [["-m", "celery", "-A", "tasks", "worker"],
                                  ["-m", "celery", "-A", "tasks", "beat"],
                                  ["-m", "celery", "-A", "tasks", "flower"],
                                  ["-m", "esiprov.cli", "watch"]],
                         ids=["celery worker", "celery beat", "flower", "esiprov watch"])
def test_a_bad_setting_stops_the_process_with_one_line_naming_the_variable(argv):
    done = subprocess.run([sys.executable, *argv], capture_output=True, text=True, cwd=ROOT, timeout=60,
                          env={**os.environ, **BAD}, stdin=subprocess.DEVNULL)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [LINE]
