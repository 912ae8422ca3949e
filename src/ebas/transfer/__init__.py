"""Moving repository data between stores: export of snapshots into self-contained
repositories and recall from sequential stores (tape)."""
