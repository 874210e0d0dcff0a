"""Dagster adapters: assets, checks, resources, IO manager and the Definitions."""
