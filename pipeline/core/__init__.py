"""Helpers every part uses: errors, atomic files, process pools, progress, image utilities."""
