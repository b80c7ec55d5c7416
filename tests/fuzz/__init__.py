"""Fuzzing the front end: a grammar-aware generator (`generate`), a mutator over the shipped
specs and the docs' examples (`mutate`), a corpus of hostile cases (`hostile`) and the
harness that runs them in resource-limited worker processes (`harness`).

`tests/test_robustness.py` runs a short round of each; `bench/fuzz_frontend.py` the long run
that docs/robustness.md reports.
"""
