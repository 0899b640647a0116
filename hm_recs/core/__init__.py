"""Pure logic of hm_recs: no Dagster imports, usable from tests, notebooks and benchmarks."""
