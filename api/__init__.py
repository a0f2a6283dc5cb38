"""Presentation layer: the audit API server (`server`), the ``secureflow`` CLI (`cli`), the HTTP client of the
API (`client`) and the embedded development stack (`dev`)."""
