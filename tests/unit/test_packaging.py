"""setup.cfg lists esiprov's packages by hand (a mapped heat_templates/ needs it): none may be forgotten."""
from __future__ import annotations

import configparser
from pathlib import Path

import setuptools

ROOT = Path(__file__).resolve().parents[2]


def _listed() -> set[str]:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    return set(config["options"]["packages"].split())


def test_every_package_directory_of_the_checkout_is_listed_in_setup_cfg() -> None:
    found = set(setuptools.find_packages(str(ROOT), include=["esiprov", "esiprov.*", "tasks", "tasks.*"]))
    assert found | {"esiprov.heat_templates"} == _listed()


def test_the_shipped_templates_are_mapped_into_the_package_from_the_checkouts_root() -> None:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    assert config["options"]["package_dir"].split() == ["esiprov.heat_templates", "=", "heat_templates"]
    assert (ROOT / "heat_templates" / "schema.yaml").is_file()
