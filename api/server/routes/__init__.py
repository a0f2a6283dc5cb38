"""The API's routers: operations (health, readiness, metrics), jobs and steps, audit, administration."""
