"""What a method sees: the Unlearner interface and its registry, the tools and loop methods share, and the one protocol that runs a method on a copy of a model."""
