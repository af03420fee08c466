"""pier real-systemd test suite (see run.py and docs/systemd.md)."""
