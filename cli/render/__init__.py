"""rich renderings of runtime results; one module per command."""
