"""activelab."""
