"""Evaluation: the reference interpreter, the pure-Python kernel, input validation, results and batch."""
