"""Vigil: self-hosted, multi-tenant, tamper-evident audit logs and security detection for SaaS."""

__version__ = "0.1.0"
