"""Infer: trained runs applied: evaluate, ensemble, compare, predict, export."""
