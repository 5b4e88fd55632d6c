"""CDS Hooks: service definitions, prefetch queries, the hook request, the handler and the cards."""
