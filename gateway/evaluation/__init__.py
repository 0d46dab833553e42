"""Eval sets, the runner, paired statistics, compare, regress and report."""
