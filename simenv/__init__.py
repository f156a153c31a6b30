"""painloop simulator."""
