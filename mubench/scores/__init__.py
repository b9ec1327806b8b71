"""Scores of a model on its splits: accuracy, per-sample losses, the paper's MIA, the forgetting score and NoMUS."""
