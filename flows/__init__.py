"""Prefect flows (one per file) and the `smt` command line."""
