"""The taskq HTTP API service."""
