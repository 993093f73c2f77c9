"""The base of every failure a user can act on."""


class UserError(Exception):
    """A failure a user can act on (a bad file, a bad setting, a server that is down): the
    command reports it as one line and exits 1, not as a traceback."""
