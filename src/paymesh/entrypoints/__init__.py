"""Entrypoints: HTTP, CLI, workers. Thin: parse, call the service, map errors."""
