"""Data: splits and their preprocessing, image-folder decoding, forgetting scenarios, and the task registry (each task's recipe and fixed manifest)."""
