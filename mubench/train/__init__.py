"""Training: the backbones, the one training loop and its optimisers, and the content-addressed model cache."""
