"""Use cases that exist only for the tests: proof that a use case is one module and nothing else."""
