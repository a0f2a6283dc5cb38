"""The audit API server: the FastAPI app, its routes, authentication, response schemas, its own database
(members, keys, manifests, proposals) and the web page for auditors."""
