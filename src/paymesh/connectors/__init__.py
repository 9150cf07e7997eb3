"""Connectors: one folder per PSP, each a translator between our ports and the PSP's wire."""
