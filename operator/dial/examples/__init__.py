"""Training programs used by the bundled example experiments (real computation, shipped in the worker image)."""
