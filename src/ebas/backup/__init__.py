"""Backup and restore of file trees: reading sources, archiving, restoring safely."""
