"""Talking to FHIR servers: URL policy and the bounded HTTP client."""
