#!/bin/sh
# Create (or refresh) the virtualenv that runs the local OpenStack Heat.
#
#   install.sh VENV_DIR        (PYTHON=python3.11 to choose the interpreter)
#
# Heat lives in its own venv because it pins much of the OpenStack stack, which
# must not leak into the project's venv. The pins come from requirements.txt
# (a `pip freeze` of a working install) so CI gets the same Heat every time.
# Idempotent: a stamp holding the requirements' checksum makes a second run
# return at once; a changed requirements.txt reinstalls.
set -eu

venv=${1:?usage: install.sh VENV_DIR}
here=$(cd "$(dirname "$0")" && pwd)
heat_version=27.0.1
stamp="$venv/.esiprov-heat-requirements"
want=$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)

installed() {
    "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('openstack-heat') != '$heat_version')" 2>/dev/null
}

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && installed; then
    echo "heat venv $venv: openstack-heat $heat_version already installed"
    exit 0
fi

echo "heat venv $venv: installing openstack-heat $heat_version (about a minute)..."
start=$(date +%s)
rm -f "$stamp"
[ -x "$venv/bin/python" ] || "${PYTHON:-python3}" -m venv "$venv"
if ! "$venv/bin/pip" install -q -r "$here/requirements.txt"; then
    # A pin that vanished from the index should not block development: let the
    # resolver pick the rest around the one version that matters.
    echo "heat venv $venv: pinned install failed; resolving openstack-heat==$heat_version unpinned"
    "$venv/bin/pip" install -q "openstack-heat==$heat_version" python-heatclient
fi
installed || { echo "heat venv $venv: openstack-heat $heat_version missing after install" >&2; exit 1; }
# The cached db_synced template DB (see esiprov/devenv/heatserver.py) belongs to the old install.
rm -rf "$venv/esiprov-cache"
echo "$want" > "$stamp"
echo "heat venv $venv: ready in $(( $(date +%s) - start )) s"
