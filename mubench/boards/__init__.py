"""What a reader sees: leaderboards from the store, the figures, the scatter plots and the report."""
