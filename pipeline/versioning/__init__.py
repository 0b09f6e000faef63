"""Versioning the outputs: rebuilding stages with DVC, pushing and tagging what was built."""
