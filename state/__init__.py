"""amloop package."""
