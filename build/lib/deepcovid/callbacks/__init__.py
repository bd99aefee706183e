"""Lightning callbacks: everything that is not the model."""
