"""The embedded development stack: the demo, ``secureflow up``'s dev consortium, its local compute executor
and the live-server helper used by tests. The production server (`api.server`) imports nothing from here."""
