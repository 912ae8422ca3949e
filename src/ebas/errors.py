"""One exception tree for ebas.

Every error carries an exit code for the CLI, a ``retryable`` flag that the retry
wrapper and transfer engine obey, and a ``hint`` that tells a tired administrator what
to do next::

    EbasError (exit 1)
    ├── UsageError (exit 2)                  bad arguments, conflicting options
    ├── StoreError                           the storage backend failed
    │   ├── ObjectNotFound                   a named object does not exist
    │   ├── ObjectExists                     create-only write found an object
    │   ├── PermissionDenied                 the store refused (append-only, credentials)
    │   │   └── ObjectLocked                 write-once retention (Object Lock) forbids it
    │   ├── ObjectArchived                   in a cold/archive tier: thaw it first
    │   ├── StoreFull                        no space left on the store
    │   ├── InvalidRange                     a ranged read past the end of an object
    │   └── TransientStoreError (retryable)  timeouts, resets, 5xx; safe to try again
    ├── RepositoryError
    │   ├── RepositoryNotFound (exit 10)     no repository at that URL
    │   ├── RepositoryExists                 init on a non-empty location
    │   ├── WrongPassword (exit 12)          no key file opens with that password
    │   ├── KeyFileError (exit 12)           a key file is missing or tampered with
    │   ├── UnsupportedFormat                a newer format version than this ebas knows
    │   ├── IntegrityError (exit 13)         corrupt pack, blob, index or snapshot
    │   │   └── MalformedObject              authentic (or plain) but not of the documented shape
    │   ├── IndexDamaged (exit 13)           the dedup table cannot be trusted
    │   ├── SnapshotNotFound                 no snapshot matches an id or filter
    │   ├── AmbiguousSnapshot                an id prefix matches several snapshots
    │   ├── SnapshotProtected                a legal hold or compliance retention forbids removal
    │   └── LockError (exit 11)              the repository is locked by someone else
    ├── SourceError                          a file being backed up could not be read
    └── RestoreError
        └── UnsafePath                       a tree entry would escape the target
"""

from __future__ import annotations

from datetime import datetime

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3
EXIT_REPO_NOT_FOUND = 10
EXIT_LOCKED = 11
EXIT_WRONG_PASSWORD = 12
EXIT_INTEGRITY = 13
EXIT_INTERRUPTED = 130


class EbasError(Exception):
    """Base of every error ebas raises on purpose.

    ``str(err)`` is the message; ``err.hint`` says what to do next (may be empty).
    """

    exit_code: int = EXIT_ERROR
    retryable: bool = False
    default_hint: str = ""

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = self.default_hint if hint is None else hint

    def render(self) -> str:
        """Message and hint as one or two lines for a terminal."""
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message

    def to_json(self) -> dict:
        """Machine-readable form used by ``--json`` output."""
        return {
            "error": type(self).__name__,
            "message": self.message,
            "hint": self.hint,
            "exit_code": self.exit_code,
        }


class UsageError(EbasError):
    """The command line or API call was wrong (bad or conflicting options)."""

    exit_code = EXIT_USAGE


# ---------------------------------------------------------------- storage errors
class StoreError(EbasError):
    """The storage backend failed."""


class ObjectNotFound(StoreError):
    """A named object does not exist in the store."""

    def __init__(self, name: str, *, store: str = "", hint: str | None = None):
        where = f" in {store}" if store else ""
        super().__init__(f"object {name!r} not found{where}", hint=hint)
        self.name = name


class ObjectExists(StoreError):
    """A create-only write found an object already stored under that name."""


class PermissionDenied(StoreError):
    """The store refused the operation (append-only credentials, file permissions)."""

    default_hint = "check the credentials or permissions for this repository location"


class StoreFull(StoreError):
    """The store has no space left. Nothing partial was left under a final name."""

    default_hint = "free space on the backup target (or prune old snapshots) and run again"


class InvalidRange(StoreError):
    """A ranged read asked for bytes past the end of an object."""


class TransientStoreError(StoreError):
    """A failure that may succeed if tried again (timeout, reset, 5xx, throttling)."""

    retryable = True



class ObjectArchived(StoreError):
    """The object sits in a cold/archive tier and must be restored (thawed) before reading."""

    default_hint = ("restore (thaw) the listed objects from the archive tier, wait until the "
                    "restore has finished, then run the command again")

    def __init__(self, message: str, *, name: str = "", hint: str | None = None):
        super().__init__(message, hint=hint)
        self.name = name


class ObjectLocked(PermissionDenied):
    """A delete or overwrite refused because the object is under write-once retention."""

    default_hint = ("the object is under write-once retention (Object Lock); it can be removed "
                    "after the retain-until date, or in governance mode by credentials allowed "
                    "to bypass it")

    def __init__(self, message: str, *, name: str = "", retain_until: datetime | None = None,
                 hint: str | None = None):
        super().__init__(message, hint=hint)
        self.name = name
        self.retain_until = retain_until

# ------------------------------------------------------------- repository errors
class RepositoryError(EbasError):
    """Something about the repository itself is wrong."""


class RepositoryNotFound(RepositoryError):
    """There is no ebas repository at the given location."""

    exit_code = EXIT_REPO_NOT_FOUND
    default_hint = "check --repo / EBAS_REPOSITORY, or create one with 'ebas init'"


class RepositoryExists(RepositoryError):
    """``init`` was asked to create a repository where one (or other data) already is."""


class WrongPassword(RepositoryError):
    """No key file in the repository opens with the given password."""

    exit_code = EXIT_WRONG_PASSWORD
    default_hint = "check EBAS_PASSWORD / --password-file; 'ebas key list' needs a valid password too"


class KeyFileError(RepositoryError):
    """A key file is missing, unreadable or has been tampered with."""

    exit_code = EXIT_WRONG_PASSWORD
    default_hint = "restore the keys/ directory from a copy, or open with another key's password"


class UnsupportedFormat(RepositoryError):
    """The repository uses a format this version of ebas does not understand."""

    default_hint = "upgrade ebas to a version that supports this repository format"


class IntegrityError(RepositoryError):
    """Stored data failed verification (hash, authentication tag, structure)."""

    exit_code = EXIT_INTEGRITY
    default_hint = "run 'ebas check --read-data' to list all damage; 'ebas repair index' rebuilds the index"


class IndexDamaged(IntegrityError):
    """An index segment is corrupt or missing; dedup against it would be unsafe."""

    default_hint = "run 'ebas repair index' to rebuild the index from pack headers"


class MalformedObject(IntegrityError):
    """An object decoded (and, if sealed, authenticated) but its fields have the wrong
    types or ranges: written by a buggy or hostile key holder, or damaged before sealing.

    ``kind`` names the object class ("snapshot", "tree", "hold record", ...) and ``name``
    the object (id or store name) so callers can report and skip exactly that object.
    """

    default_hint = ("it was sealed with the repository key but its fields are invalid (a faulty or hostile "
                    "client wrote it); 'ebas check' lists every such object; replace it from a replica or "
                    "another copy of the repository if there is one")

    def __init__(self, kind: str, name: str, problem: str, *, hint: str | None = None):
        label = f"{kind} {name}" if name else kind
        super().__init__(f"{label} is malformed: {problem}", hint=hint)
        self.kind = kind
        self.name = name
        self.problem = problem

    def __reduce__(self):
        return (type(self), (self.kind, self.name, self.problem), {"hint": self.hint})


class SnapshotNotFound(RepositoryError):
    """No snapshot matches the given id, prefix or filter."""

    default_hint = "list snapshots with 'ebas snapshots'"


class AmbiguousSnapshot(RepositoryError):
    """A snapshot id prefix matches more than one snapshot."""

    default_hint = "give more characters of the snapshot id"


class SnapshotProtected(RepositoryError):
    """A snapshot cannot be removed: a legal hold or a compliance retention protects it."""

    default_hint = "a legal hold ends with 'ebas hold remove'; a compliance retention cannot be shortened"


class LockError(RepositoryError):
    """The repository is locked in a way that conflicts with this operation."""

    exit_code = EXIT_LOCKED
    default_hint = "wait for the other operation, or run 'ebas unlock' if its process is gone"


# ---------------------------------------------------------------- backup errors
class SourceError(EbasError):
    """A source file or directory could not be read during backup."""


class RestoreError(EbasError):
    """A restore could not write what was asked."""


class UnsafePath(RestoreError):
    """A tree entry would write outside the restore target; the restore refused it."""

    exit_code = EXIT_INTEGRITY
    default_hint = "the snapshot's tree may be tampered with; run 'ebas check' on the repository"


class Interrupted(EbasError):
    """The operation was interrupted (signal or cancellation)."""

    exit_code = EXIT_INTERRUPTED
