"""Scheduler plugins: the defaults that matter for DRA clusters, and DynamicResources."""
