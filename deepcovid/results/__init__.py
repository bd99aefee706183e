"""Results of evaluated runs: the evaluation files, their figures and Markdown, and the
comparison and aggregation of many runs."""
