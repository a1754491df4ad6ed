"""Core functions of commands that have no home module elsewhere in ``pipeline``."""
