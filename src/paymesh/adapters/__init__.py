"""Adapters: each only stores or moves bytes for a port."""
