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


@pytest.mark.parametrize("command", [["watch"], ["resync"]])
def test_a_broker_that_refuses_the_password_stops_the_command_in_one_line_without_the_password(cluster, command):
    env = {**cluster.env, "ESIPROV_BROKER_URL": "amqp://guest:not-the-password@127.0.0.1:5672//",
           "ESIPROV_RESULT_BACKEND": cluster.redis.url}
    done = subprocess.run([sys.executable, "-m", "esiprov.cli", *command], capture_output=True, text=True,
                          cwd=ROOT, timeout=60, env={**os.environ, **env}, stdin=subprocess.DEVNULL)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("esiprov: broker amqp://guest:**@127.0.0.1:5672// ")
    assert "ACCESS_REFUSED" in lines[0]
    assert "not-the-password" not in done.stderr + done.stdout
