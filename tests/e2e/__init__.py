"""End-to-end tests: the real engine started as a subprocess on a temporary SQLite database."""
