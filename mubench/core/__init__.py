"""Plumbing every layer shares: errors, the registry type, config parsing and hashing, seeding, task losses, progress lines, the GPU fast path, and the MLflow store."""
