"""Repository format and content layer (layer 1): config, keys, packs, index, trees, snapshots."""
