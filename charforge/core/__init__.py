"""Shared nouns every layer uses: the tag schema, the parameter space, safe image loading, portable noise and
run-time capabilities. Imports nothing above it."""
