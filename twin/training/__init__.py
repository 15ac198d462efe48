"""Training sessions: scenarios played live for trainees, and how they are scored."""
