"""``ebas snapshots --chains``: each backup chain as a small tree."""

from __future__ import annotations

from ebas.cli.render import human_size, local_time


def show_chains(env, chains) -> None:
    """Print ``chains`` (an ``ebas.api.ChainList``; JSON: a list of chains)."""
    blocks = []
    for c in chains:
        base = c.base.id[:8] if c.base else f"{c.id[:8]} (base forgotten)"
        lines = [f"chain {base}  {c.host}  {' '.join(c.paths)}: {len(c.members)} snapshot(s), "
                 f"{human_size(c.new_bytes)} new data"]
        for i, s in enumerate(c.members):
            mark = "" if s.level == "full" else ("└─ " if i == len(c.members) - 1 else "├─ ")
            synth = " (synthetic)" if s.stats.get("synthetic") else ""
            lines.append(f"  {mark}{s.id[:8]}  {local_time(s.time_ns)}  {s.level}{synth}  "
                         f"+{human_size(int(s.stats.get('bytes_stored_added', 0)))}")
        blocks.append("\n".join(lines))
    env.emit(chains, "\n\n".join(blocks) + f"\n{len(chains)} chain(s), {chains.snapshots} snapshots")
