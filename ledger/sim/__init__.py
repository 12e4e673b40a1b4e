"""Simulation: the meter fleet simulator, the market day and the local-gateway harness they drive.

Tools for demos, load and end-to-end tests. Nothing in the core (`ledger` outside this package)
imports it; it may import anything in `ledger`, and `api` for the in-process gateway.
"""
