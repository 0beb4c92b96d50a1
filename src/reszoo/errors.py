"""The exceptions reszoo raises on purpose.

Every error the library raises for a reason a user can act on derives from :class:`ReszooError`,
so a caller (and the ``reszoo`` CLI) can tell them from bugs. Each also derives from the built-in
exception a Python user expects, so ``except ValueError`` or ``except FileNotFoundError`` keep
working.

- :class:`InvalidArgumentError` (a ``ValueError``): a value of the right type that is not valid.
- :class:`ArgumentTypeError` (a ``TypeError``): a value of the wrong type. It is a ``ValueError``
  too, because reszoo 0.1 raised ``ValueError`` for wrong types and callers catch that.
- :class:`MissingInputError` (a ``FileNotFoundError``): a path given as input names nothing usable.
"""

from __future__ import annotations


class ReszooError(Exception):
    """Base of every error reszoo raises on purpose."""


class UsageError(ReszooError):
    """Base of the errors that mean: the call itself was wrong (the CLI exits with 2 for these)."""


class InvalidArgumentError(UsageError, ValueError):
    """An argument or setting has a value outside what is valid; the message names both."""


class ArgumentTypeError(UsageError, TypeError, ValueError):
    """An argument or setting has the wrong type; the message names the field, value and valid types."""


class MissingInputError(UsageError, FileNotFoundError):
    """A file or folder given as input does not exist or does not hold what was asked for."""


class WeightsIntegrityError(ReszooError, RuntimeError):
    """A weights file failed its checksum or could not be read; it was not used (and not kept)."""


class WeightsNotCachedError(ReszooError, FileNotFoundError):
    """Weights are not in the cache and cannot be downloaded now (offline, or the download failed)."""


class NonFiniteLossError(ReszooError, RuntimeError):
    """The training loss became NaN or infinite; the last checkpoint on disk is still good."""


class OutOfMemoryError(ReszooError, RuntimeError):
    """A batch did not fit in the device's memory; the message names the batch size tried and a smaller one.

    A ``RuntimeError``, as torch's own out-of-memory errors are (``torch.OutOfMemoryError``, the CPU
    allocator's "can't allocate memory"); the original is its ``__cause__``.
    """


class ReplicasDivergedError(ReszooError, RuntimeError):
    """The processes of a distributed run ended with different weights; none were saved."""


class RunFolderError(ReszooError, RuntimeError):
    """A run folder cannot be used: another process holds it, or it holds another run."""


class FileWriteError(ReszooError, OSError):
    """A file could not be written (disk full, no permission, read-only file system).

    The message names the file and the cause; the file as it was before (a previous checkpoint,
    say) is still in place. It is an ``OSError`` with the operating system's ``errno``.
    """

    def __str__(self) -> str:
        return str(self.strerror)


class TrainingInterrupted(ReszooError):
    """A training run stopped on SIGINT (Ctrl-C) or SIGTERM after saving a checkpoint to resume from.

    Attributes:
        signum: the signal's number.
        exit_code: what the ``reszoo`` command exits with: 128 + ``signum`` (130, 143), as a shell does.
    """

    def __init__(self, message: str, *, signum: int) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum


class HubUnreachableError(ReszooError, ConnectionError):
    """The Hugging Face Hub cannot be reached (offline, ``HF_HUB_OFFLINE`` set, no network); nothing was sent."""


class ExportCheckError(ReszooError, RuntimeError):
    """An exported artefact did not load or did not match the eager model; the output was not written."""


class UserCodeError(ReszooError, RuntimeError):
    """Code in a user's file raised while it was imported or called (``reszoo diagnose FILE.py:FACTORY``);
    the message names the file and the line."""
