"""HTTP routes (the only package besides app.py that imports FastAPI)."""

from cds.api.routes import cds_routes, ops_routes

__all__ = ["cds_routes", "ops_routes"]
