"""The two ways a run ends early; the CLI turns each into one line and an exit code."""


class DlportError(Exception):
    """A problem the user can fix (bad input, missing framework): exit code 2."""

    exit_code = 2


class DivergenceError(DlportError):
    """The loss became NaN or inf during training: exit code 3."""

    exit_code = 3


class Interrupted(DlportError):
    """Ctrl-C during training, after the last complete epoch was checkpointed: exit code 130."""

    exit_code = 130
