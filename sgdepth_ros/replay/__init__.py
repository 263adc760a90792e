"""Bag replay evaluation: offline and live accuracy, latency and output bags."""
