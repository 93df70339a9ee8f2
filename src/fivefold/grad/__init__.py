"""fivefold.grad."""
