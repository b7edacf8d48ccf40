"""The exceptions that mean "the user asked for something impossible": one line, no traceback."""

# Exit codes (documented in README.md).
EXIT_FAILED = 1  # the run started and failed (non-finite loss, crash, unknown option from Hydra)
EXIT_USAGE = 2  # a bad value, missing data, unreadable checkpoint: nothing was trained
EXIT_INTERRUPTED = 130  # SIGINT / SIGTERM: last.pt and summary.json were written


class DlrunError(Exception):
    """A user mistake or an environment problem that dlrun explains in one line."""

    exit_code = EXIT_USAGE


class ConfigError(DlrunError):
    """A config value that is out of range or incompatible with another."""

    def __init__(self, key: str, value, allowed: str):
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"{key}={value!s} is not allowed: {allowed}")


class DataError(DlrunError):
    """Data that cannot be found or read."""


class CheckpointError(DlrunError):
    """A checkpoint that cannot be read or does not fit the model."""
