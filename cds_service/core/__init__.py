"""The clinical core: FHIR evidence in, ACR/EULAR classification and card decision out. No web framework, no HTTP client."""
