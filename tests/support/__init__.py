"""Real servers and media bytes for tests: no mocks on the main paths."""
