"""fivefold.oops."""
