"""Thin I/O: the only modules (with `handlers`) that talk to the Kubernetes API."""
