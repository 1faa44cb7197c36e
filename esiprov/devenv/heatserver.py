"""Real OpenStack Heat on loopback: one process, noauth, in-memory RPC, fresh SQLite DB.

Heat runs from its own virtualenv (``make heat-venv``, i.e.
heat_files/install.sh) because it pins most of the OpenStack stack. Each
HeatServer gets a fresh database, so runs never see each other's stacks. The
database is ``heat-manage db_sync`` plus fix_sqlite_autoinc.py (mandatory on
SQLite, see that script); the result is cached in the venv, since db_sync
costs about 3 s and its output depends only on the installed Heat.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import urllib.request
from pathlib import Path

from esiprov.devenv.process import LocalServer, ServiceError, free_port, tcp_open

HEAT_FILES = Path(__file__).resolve().parent / "heat_files"
REPO_ROOT = Path(__file__).resolve().parents[2]
#: the tenant the readiness probe lists stacks in; noauth accepts any
PROBE_TENANT = "admin"


def default_venv() -> Path:
    """``$ESIPROV_HEAT_VENV``, else ``.venv-heat`` at the repository root."""
    return Path(os.environ.get("ESIPROV_HEAT_VENV") or REPO_ROOT / ".venv-heat")


class HeatServer(LocalServer):
    """A Heat API + engine on 127.0.0.1 and a free port; a context manager that stops it.

    ``url`` has the ``{tenant_id}`` placeholder, the format ESIPROV_HEAT_URL uses.
    Heat's own log (and any start-up traceback) is in ``log_path``.
    """

    host = "127.0.0.1"

    def __init__(self, work_dir: Path, venv: Path | None = None) -> None:
        super().__init__(log_dir=Path(work_dir))
        self.work_dir = Path(work_dir)
        self.venv = Path(venv) if venv is not None else default_venv()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1/{{tenant_id}}"

    @property
    def log_path(self) -> Path:
        return self.work_dir / "heat.log"

    def start(self, timeout: float = 90.0) -> HeatServer:
        """Prepare a fresh state dir and DB, start Heat, return once the API lists stacks.

        Does nothing when already started, so ``with HeatServer(d).start()`` works too.
        """
        if self._service is not None:
            return self
        if not (self.venv / "bin" / "heat-manage").exists():
            raise ServiceError(f"no Heat virtualenv at {self.venv}: run `make heat-venv` "
                               "(or point ESIPROV_HEAT_VENV at one made by heat_files/install.sh)")
        state = self.work_dir / "state"
        shutil.rmtree(state, ignore_errors=True)
        state.mkdir(parents=True)
        conf = self._render_conf(state)
        self._prepare_db(conf, state / "heat.sqlite")
        self.port = free_port(self.host)
        argv = [str(self.venv / "bin" / "python"), "-W", "ignore", str(HEAT_FILES / "allinone.py"),
                "--bind", self.host, "--port", str(self.port), "--", "--config-file", str(conf)]
        return self._launch("heat", argv, self._lists_stacks, timeout)

    def _render_conf(self, state: Path) -> Path:
        text = (HEAT_FILES / "heat.conf.in").read_text()
        for placeholder, value in {"@STATE_DIR@": state, "@PLUGIN_DIR@": HEAT_FILES / "plugins",
                                   "@HEAT_ETC@": self.venv / "etc" / "heat"}.items():
            text = text.replace(placeholder, str(value))
        conf = state / "heat.conf"
        conf.write_text(text)
        return conf

    def _prepare_db(self, conf: Path, db: Path) -> None:
        """Copy the cached template DB, or build it (db_sync + autoinc fix) and cache it."""
        fixer = HEAT_FILES / "fix_sqlite_autoinc.py"
        digest = hashlib.sha256(fixer.read_bytes()).hexdigest()[:12]
        cached = self.venv / "esiprov-cache" / f"heat-{digest}.sqlite"
        if cached.exists():
            shutil.copyfile(cached, db)
            return
        self._run([str(self.venv / "bin" / "heat-manage"), "--config-file", str(conf), "db_sync"])
        self._run([str(self.venv / "bin" / "python"), str(fixer), str(db)])
        cached.parent.mkdir(exist_ok=True)
        # Copy then rename: a parallel session never sees a half-written cache file.
        with tempfile.NamedTemporaryFile(dir=cached.parent, delete=False) as tmp:
            shutil.copyfile(db, tmp.name)
        os.replace(tmp.name, cached)

    def _run(self, argv: list[str]) -> None:
        done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=300)
        if done.returncode:
            output = "\n".join((done.stdout + done.stderr).splitlines()[-20:])
            raise ServiceError(f"{' '.join(argv)} failed with {done.returncode}:\n{output}")

    def _lists_stacks(self) -> bool:
        """Ready when a stack list answers: that goes through the engine, not just the API."""
        if not tcp_open(self.host, self.port):
            return False
        url = f"http://{self.host}:{self.port}/v1/{PROBE_TENANT}/stacks"
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
