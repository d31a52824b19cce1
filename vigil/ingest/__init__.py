"""Intake: decode, validate, redact and canonicalise events before they reach the ledger."""
