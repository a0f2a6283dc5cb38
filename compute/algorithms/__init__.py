"""The registered algorithms: one module each, discovered by `secureflow.compute.registry.discover`.

Modules whose name starts with ``_`` are helpers and are not imported by discovery.
"""
