"""The one exception type the CLI turns into a one-line message and a non-zero exit."""


class HwgenError(Exception):
    """A problem with the user's input or environment, stated so that they can fix it.

    The message names the file / layer / parameter at fault and, where there is one,
    what would fix it. The CLI prints it as one line and exits with status 2.
    """
