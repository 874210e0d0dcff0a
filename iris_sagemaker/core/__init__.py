"""The core: the Iris data, request bodies, scoring, run folders and publishing, storage, settings.

Knows no orchestrator, no transport and no SageMaker client (docs/ARCHITECTURE.md)."""
