"""Reading finished runs: compare, figures, parity evidence, weight export."""
