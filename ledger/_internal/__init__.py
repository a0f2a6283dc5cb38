"""Implementation details of `ledger`; nothing here is public API."""
