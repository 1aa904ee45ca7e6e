"""`itx report`: what integer arithmetic costs in BLEU (Lin et al. 2020 Fig. 5-7, Table 2) plus a design-space
sweep (accumulator width x re-scaling mode x bits, array cycles per sentence).

plan.py lists the measurements, measure.py computes them (cached as JSON under reports/cache/), render.py turns
them into report.json, REPORT.md and PNG figures.
"""
