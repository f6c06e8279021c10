"""The local stack: the processes `make demo` runs on one machine in place of AWS."""
