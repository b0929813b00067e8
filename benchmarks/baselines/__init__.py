"""Baseline servers for the fan-out benchmark: the same subscribe/snapshot/change exchange on other stacks."""
