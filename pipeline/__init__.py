"""Colorization dataset and model pipeline: the library behind the Prefect flows (no Prefect here)."""
