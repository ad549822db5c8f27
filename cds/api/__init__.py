"""The HTTP layer: routes, middleware, request bodies and responses (with app.py and
serving.py, the only modules that import FastAPI, Starlette or uvicorn)."""

from cds.api.routes import cds_routes, ops_routes

__all__ = ["cds_routes", "ops_routes"]
