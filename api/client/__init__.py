"""The client of the audit API (pydantic models shared with the server in `models`)."""
