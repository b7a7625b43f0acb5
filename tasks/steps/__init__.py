"""The pipeline's steps, one module each (see tasks.pipeline.STEPS)."""
