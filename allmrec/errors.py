"""User-facing errors.

Everything the CLI should report as a single line (bad input, missing asset, wrong checkpoint)
raises :class:`AllmrecError`. The CLI prints ``error: <message>`` and exits with status 2; any
other exception is a bug and keeps its traceback.
"""


class AllmrecError(Exception):
    """An error caused by the user's input or environment, with a message that says what to do."""


class DataError(AllmrecError):
    """Malformed, missing or inconsistent input data."""


class AssetError(AllmrecError):
    """A model or dataset asset cannot be found locally."""


class CheckpointError(AllmrecError):
    """A checkpoint directory is missing, corrupt, or does not fit the model it is loaded into."""


__all__ = ["AllmrecError", "DataError", "AssetError", "CheckpointError"]
