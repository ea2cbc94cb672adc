"""Data: canonical tables, loaders, synthetic generator."""
