"""Stages of a promotion, each usable as a library function on its own.

    from tierup.stages import resolve, retag, deploy, wait, rollback, retention, record

A stage takes what it acts on (clients, names, references) as arguments and returns a
plain result; it never reads envs.yaml, prints or exits.
"""
