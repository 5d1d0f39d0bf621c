"""`atelier sketch` commands (see core/cli.py for the command contract)."""


def register(commands):
    """Add this group's commands to the ``atelier sketch`` sub-parser."""
