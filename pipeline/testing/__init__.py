"""Test doubles that tests and benchmarks share (as numpy.testing, prefect.testing): never used by a stage."""
