"""What a run is made of: the plan, the keys that decide what is reused, and the Original and Retrain references."""
