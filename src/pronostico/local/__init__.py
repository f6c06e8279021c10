"""Local tooling: the CLI, the one-machine stack (`make demo`) and its synthetic data."""
