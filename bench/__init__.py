"""Benchmarks on real local services: ``python -m bench.<name>`` (``make bench`` runs them)."""
