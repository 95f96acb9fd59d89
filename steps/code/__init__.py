"""Scripts that run inside the SageMaker containers (and unmodified in the local runner)."""
