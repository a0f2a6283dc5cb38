"""The embedded development stack: the demo, ``secureflow up``'s dev consortium, and its local compute
executor. The production server (`api.server`) imports nothing from here; test and benchmark helpers live in
the repository's `tools/` (never in the wheel)."""
