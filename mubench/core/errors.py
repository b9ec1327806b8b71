"""User-facing errors: one sentence naming the bad value and what would be valid."""


class MubenchError(Exception):
    """A mistake in what the user asked for; the CLI prints it without a traceback."""


class RegistryError(MubenchError):
    """An unknown, duplicate or unloadable registry entry."""
