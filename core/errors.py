"""Errors meant for people: the CLI prints them, the add-on reports them, neither shows a traceback."""


class AtelierError(Exception):
    """A problem the user can fix (bad file, bad argument); the message names the file and the problem."""


class Cancelled(Exception):
    """The user asked to stop (Ctrl-C on the command line, ESC in Blender)."""
