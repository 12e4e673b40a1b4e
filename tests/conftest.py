"""Shared fixtures live in tests/fixtures/ and are loaded here for every test directory."""

pytest_plugins = ["tests.fixtures.chain", "tests.fixtures.gateway", "tests.fixtures.postgres"]
