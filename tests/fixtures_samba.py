"""Samba AD lab fixtures (filled in by the Samba lab work)."""
