"""Performance measurements against real servers; each module prints a final JSON line (figure, baseline, ratio)."""
