"""The recorded data the tests check esiprov against, kept in the repository (see README.md here).

This is the one place that knows where those files are, so a clone tests itself with nothing beside it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).resolve().parent


def seed_text() -> str:
    """The seed document as recorded: every etcd record of one ese_physical_port create (the contract)."""
    return (DATA_DIR / "seed.txt").read_text()


def plan_reference() -> dict[str, Any]:
    """The reference planner's recorded templates, configs and jobs; parsed afresh so no test sees another's edits."""
    return json.loads((DATA_DIR / "plan_reference.json").read_text())
