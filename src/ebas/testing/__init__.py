"""Test and benchmark kit that ships with ebas (emulated WAN links); standard library only."""
