"""Scan articles for media references (pure: no network)."""
