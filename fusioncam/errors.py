"""The one exception type for errors a user can cause.

The CLI prints its message on one line and exits non-zero; the GUI shows it in a dialog or the status
bar. Anything else that escapes is a bug and keeps its traceback.
"""


class FusioncamError(Exception):
    """A problem with the user's input (a missing file, a malformed rig, an unknown method...).

    The message must name the problem and, where it helps, what to do about it.
    """
