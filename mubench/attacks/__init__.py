"""Evaluators: the attack registry and the attacks calibrated by shadow models (LiRA, U-LiRA) with their shadows."""
