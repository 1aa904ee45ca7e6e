"""itx: command-line tooling around the golden model, the RTL and the reports."""
