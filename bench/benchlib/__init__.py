"""pier vs crun vs runc benchmark harness (stdlib only); entry point: bench/run."""
