"""The HTTP edge: the FastAPI app, request dependencies, OperationOutcomes and the card preview."""
