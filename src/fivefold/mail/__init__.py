"""fivefold.mail."""
