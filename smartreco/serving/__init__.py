"""Serving-side library (Python 3.12 serving venv): model runtime, URIs, response cache, messages."""
