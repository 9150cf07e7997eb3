"""Service layer: use cases over the ports. No database, broker, HTTP or vendor imports."""
