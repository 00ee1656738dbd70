"""Checking: the passes that find every error and warning, and the exact reasoning about conditions they use."""
