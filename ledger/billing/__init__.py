"""Bills: tariffs on record, bills computed from anchored readings and settled trades, bill roots
on chain.

Owns the tariff format and its hash, the time line of tariff bands, the bill computation (pure
functions over readings, tariffs and trades: anyone can repeat it), the canonical bill document,
the BillRegistry client, issuing runs and the verification of one bill against the chain. May
import the chain, store, meters, anchoring, readings and market stages.
"""
