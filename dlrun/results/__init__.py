"""How results are shown: the end-of-run box, tables, figures, dlrun-compare and the HTML report."""
