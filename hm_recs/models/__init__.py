"""Torch models and their training loops (no Dagster). Import them inside the functions that use them:
every Dagster step re-imports the code location and torch takes about a second to import."""
