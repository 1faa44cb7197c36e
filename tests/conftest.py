"""Fixtures live in tests/fixtures, one module per kind of service."""
pytest_plugins = [
    "tests.fixtures.services",
    "tests.fixtures.heat",
    "tests.fixtures.pipeline",
    "tests.fixtures.cluster",
]
