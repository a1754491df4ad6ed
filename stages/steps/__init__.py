"""The built-in steps of a promotion, one module each (``stages.all_steps`` is the registry)."""
