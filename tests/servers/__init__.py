"""Real servers (PostgreSQL, ...) started by the tests on loopback, as pytest fixtures."""
