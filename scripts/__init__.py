"""Brownie scripts an operator runs: `brownie run scripts/<name>.py --network ledger-ganache`
(README "Brownie"). A package so that mypy checks them and they share `scripts._ledger`."""
