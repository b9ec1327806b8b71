"""Running the grid: one cell, its key, the executors (local, Ray), the grid itself and hyperparameter tuning."""
