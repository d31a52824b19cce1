"""The tamper-evident ledger: canonical bytes, Merkle tree, checkpoints."""
