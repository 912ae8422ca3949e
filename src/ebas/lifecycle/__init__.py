"""Snapshot lifecycle: retention and forget, legal holds, prune and its plan,
reachability, synthetic fulls, chains, and object-lock upkeep."""
