"""Reading, checking, splitting, transforming and balancing chest X-ray data."""
