"""Lowering: a checked policy to decision trees and instruction programs, then to flat validated arrays."""
