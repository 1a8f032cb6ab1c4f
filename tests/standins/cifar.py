"""Placeholder: filled in by the chapter's work."""
