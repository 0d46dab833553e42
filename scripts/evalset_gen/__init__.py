"""Builders for the shipped eval sets; scripts/make_evalsets.py drives them."""
