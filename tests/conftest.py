"""Fixtures live in tests/fixtures, one module per kind of service."""
pytest_plugins = [
    "tests.fixtures.services",
    "tests.fixtures.heat",
    "tests.fixtures.pipeline",
    "tests.fixtures.cluster",
]


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # noqa: ARG001 - pytest's hook signature
    """How long each crash took to heal (tests/chaos), so a run shows the figures, not just a pass."""
    from tests.fixtures.cluster import RECOVERIES
    if RECOVERIES:
        terminalreporter.section("recovery times")
        for line in RECOVERIES:
            terminalreporter.write_line(line)
