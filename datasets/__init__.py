"""Task adapters (installed as `mubench.datasets`) and their committed split manifests under splits/."""
