"""Thin Dagster wiring over `hm_recs.core`: one module per stage."""
