"""fivefold.video."""
