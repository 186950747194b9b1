"""Networks and the skeleton graph."""
