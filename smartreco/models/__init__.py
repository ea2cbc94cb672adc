"""Recommenders: CF (Lightning), content-based, hybrid ranker, and the baseline peers."""
