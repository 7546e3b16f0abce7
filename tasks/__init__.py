"""Prefect tasks: thin wrappers over mpc/ and compliance/ functions."""
