"""Monitoring: Evidently drift checks (interactions, features, served predictions) vs the training reference."""
