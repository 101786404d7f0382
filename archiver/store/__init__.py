"""Stores: a local directory (the embedded default) and S3."""
