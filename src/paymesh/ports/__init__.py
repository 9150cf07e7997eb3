"""Ports: the small interfaces the service layer needs from the outside world."""
