"""Optimisation for many devices at once (placeholder while the package is built)."""
