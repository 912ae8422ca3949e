"""The ``ebas`` command line: parse arguments, call the API, print text or JSON.

Exit codes (also in README.md): 0 ok, 1 error, 2 usage, 3 partial (a backup could not read
some files; ``restore --skip-damaged`` could not restore some), 10 repository not found,
11 repository locked, 12 wrong password or unusable key file, 13 integrity error (corrupt
or tampered data), 130 interrupted. With ``--json`` every failure, including a usage error
caught by the argument parser and an unexpected one, also prints the error object
``{"error", "message", "hint", "exit_code"}`` on stdout (:func:`main`).
Heavy modules (numpy, zstd, crypto, cloud SDKs) are imported inside commands so that
``ebas --help`` starts fast.
"""

from __future__ import annotations

import json
import os
import sys

import click

from ebas import __version__
from ebas.cli.render import printable, printable_lines
from ebas.errors import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_USAGE, EbasError, UsageError


class Env:
    """Per-invocation settings shared by all commands (no global state)."""

    def __init__(self, repo: str | None, password_file: str | None, json_out: bool, quiet: bool,
                 catalog: str | None = None):
        self.repo_url = repo
        self.password_file = password_file
        self.json = json_out
        self.quiet = quiet
        self.catalog = catalog  # --catalog PATH|URL (None: env EBAS_CATALOG, else the cache default)

    # -------------------------------------------------------------- secrets
    def password(self, prompt: str = "repository password", confirm: bool = False) -> bytes:
        """The password from EBAS_PASSWORD, --password-file / EBAS_PASSWORD_FILE, or a prompt."""
        return read_password("EBAS_PASSWORD", self.password_file or os.environ.get("EBAS_PASSWORD_FILE"),
                             prompt, confirm, hint="set EBAS_PASSWORD or EBAS_PASSWORD_FILE, or use --password-file")

    def url(self) -> str:
        """The repository URL from --repo or EBAS_REPOSITORY."""
        url = self.repo_url or os.environ.get("EBAS_REPOSITORY")
        if not url:
            raise UsageError("no repository given", hint="use --repo URL or set EBAS_REPOSITORY")
        return url

    def open_repo(self):
        """Open the repository (config, key) or raise a clear error."""
        from ebas.repo.repository import Repository
        from ebas.storage.redact import redacting
        from ebas.storage.registry import open_store
        from ebas.storage.stack import build_stack

        url = self.url()
        password = self.password()
        with redacting(url):
            repo = Repository.open(build_stack(open_store(url)), password)
        for w in repo.key_warnings:
            self.warn(w)
        repo.on_warning = self.warn  # warnings found later (e.g. a rejected local cache) show as they happen
        return repo

    # --------------------------------------------------------------- output
    def warn(self, message: str) -> None:
        """A warning on stderr, also under --quiet (they concern the data's safety); with
        --json a JSON object ``{"type": "warning", "message": ...}`` on one line."""
        if self.json:
            click.echo(json.dumps({"type": "warning", "message": message}), err=True)
        else:
            click.echo(f"warning: {message}", err=True)

    def note(self, message: str) -> None:
        """A human message on stderr (suppressed by --quiet)."""
        if not self.quiet:
            click.echo(printable_lines(message), err=True)

    def emit(self, data, text: str | None = None) -> None:
        """Print ``data`` as JSON with --json, else ``text`` (if any)."""
        if self.json:
            # ASCII JSON: names that are not valid UTF-8 travel as \udcXX escapes, still valid JSON
            click.echo(json.dumps(data, indent=None if isinstance(data, list) and len(data) > 50 else 2,
                                  default=str, ensure_ascii=True))
        elif text is not None:
            click.echo(printable_lines(text))  # names are escaped by the renderers; this catches the rest


def read_password(env_var: str, path: str | None, prompt: str, confirm: bool = False, *, hint: str) -> bytes:
    """A password as bytes: passwords are bytes, whatever the locale.

    From the environment variable ``env_var`` (its raw bytes), else the file ``path`` (its
    bytes, without a trailing newline), else a prompt on a terminal (the typed text in
    UTF-8; bytes the terminal sent that are not UTF-8 come back as they were)."""
    raw = os.environb.get(os.fsencode(env_var))
    if raw is not None:
        return raw
    if path:
        return read_password_file(path)
    if not sys.stdin.isatty():
        raise UsageError("no password given", hint=hint)
    return click.prompt(prompt, hide_input=True, confirmation_prompt=confirm, err=True).encode("utf-8", "surrogateescape")


def read_password_file(path: str) -> bytes:
    """The bytes of a password file without its trailing newline (any bytes, not only UTF-8)."""
    try:
        with open(path, "rb") as fh:
            return fh.read().rstrip(b"\r\n")
    except OSError as exc:
        raise UsageError(f"cannot read password file {path!r}: {exc.strerror}") from exc


def json_option(f):
    """Add a per-command ``--json`` flag (the global ``--json`` works as well)."""

    def set_json(ctx: click.Context, _param, value: bool) -> None:
        if value:
            ctx.ensure_object(dict)["json"] = True

    return click.option("--json", "json_flag", is_flag=True, expose_value=False, callback=set_json,
                        help="print machine-readable JSON")(f)


def get_env(ctx: click.Context) -> Env:
    """The Env of this invocation."""
    obj = ctx.find_root().obj
    return Env(obj["repo"], obj["password_file"], bool(obj.get("json")), bool(obj.get("quiet")), obj.get("catalog"))


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("-r", "--repo", metavar="URL", help="repository URL or path (env EBAS_REPOSITORY)")
@click.option("--password-file", metavar="FILE", help="read the password from FILE (env EBAS_PASSWORD_FILE)")
@click.option("--catalog", metavar="URL|PATH", help="catalog database: a SQLite path or postgresql://... "
              "(env EBAS_CATALOG; default: a file in ~/.cache/ebas; 'none' disables it)")
@click.option("--json", "json_out", is_flag=True, help="print machine-readable JSON")
@click.option("-q", "--quiet", is_flag=True, help="print only results and errors")
@click.version_option(__version__, prog_name="ebas")
@click.pass_context
def cli(ctx: click.Context, repo, password_file, catalog, json_out, quiet) -> None:
    """ebas: deduplicating, encrypted, verifiable backups.

    \b
    Exit codes: 0 ok, 1 error, 2 usage, 3 partial (backup or restore --skip-damaged), 10 repository not found,
    11 locked, 12 wrong password / bad key file, 13 corrupt or tampered data, 130 interrupted.
    """
    obj = ctx.ensure_object(dict)
    obj.update(repo=repo, password_file=password_file, quiet=quiet, catalog=catalog)
    if json_out:
        obj["json"] = True


def _register() -> None:
    from ebas.cli import (
        cmd_backup,
        cmd_catalog,
        cmd_copy,
        cmd_keys,
        cmd_maint,
        cmd_migrate,
        cmd_prune,
        cmd_restore,
        cmd_retention,
        cmd_snapshots,
    )

    for mod in (cmd_backup, cmd_restore, cmd_snapshots, cmd_keys, cmd_maint, cmd_catalog, cmd_retention, cmd_prune,
                cmd_copy, cmd_migrate):
        mod.register(cli)


_register()


def _json_requested(args: list[str]) -> bool:
    """True if ``--json`` is among the options (not after a ``--``)."""
    return "--json" in (args[: args.index("--")] if "--" in args else args)


def _fail(json_mode: bool, error: str, message: str, hint: str, code: int, *, text: bool = True,
          payload: dict | None = None) -> int:
    """Report a failure and return its exit code: ``error: ...`` and the hint on stderr
    (unless ``text`` is False: already shown), and with ``--json`` the documented error
    object on stdout, so a script always gets JSON. The one place every failure passes."""
    if text:
        click.echo(f"error: {printable(message)}" + (f"\n  hint: {printable(hint)}" if hint else ""), err=True)
    if json_mode:
        try:
            obj = payload or {"error": error, "message": message, "hint": hint, "exit_code": code}
            click.echo(json.dumps(obj, ensure_ascii=True, default=str))
        except OSError:  # stdout is gone (closed pipe): stderr said it
            pass
    return code


def _scrub(exc: BaseException, argv: list[str] | None) -> None:
    """Remove the credentials of every store URL given to this invocation from ``exc``."""
    from ebas.storage.redact import scrub_exception  # imported on the error path only: start-up stays fast

    scrub_exception(exc, _given_urls(argv))


def _given_urls(argv: list[str] | None) -> list[str]:
    """The store URLs this invocation was given (arguments with ``://``, EBAS_REPOSITORY),
    whose credentials are scrubbed from every error message printed."""
    args = argv if argv is not None else sys.argv[1:]
    urls = [a.split("=", 1)[1] if a.startswith("-") and "=" in a else a for a in args if "://" in a]
    return urls + [os.environ.get("EBAS_REPOSITORY", "")]


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the CLI and turn errors into exit codes (and, with
    ``--json``, into the error object on stdout)."""
    json_mode = _json_requested(list(argv if argv is not None else sys.argv[1:]))
    try:
        code = cli.main(args=argv, prog_name="ebas", standalone_mode=False) or 0  # ctx.exit(n) returns n
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("interrupted", err=True)
        code = _fail(json_mode, "Interrupted", "interrupted", "", EXIT_INTERRUPTED, text=False)
    except click.ClickException as exc:
        exc.show()
        usage = isinstance(exc, click.UsageError)
        where = exc.ctx.command_path if usage and exc.ctx is not None else "ebas"
        code = _fail(json_mode, "UsageError" if usage else type(exc).__name__, exc.format_message(),
                     f"see '{where} --help'" if usage else "", EXIT_USAGE if usage else exc.exit_code, text=False)
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except EbasError as exc:
        _scrub(exc, argv)  # credentials in a store URL are never printed
        code = _fail(json_mode, type(exc).__name__, exc.message, exc.hint, exc.exit_code, payload=exc.to_json())
    except BrokenPipeError:
        code = EXIT_ERROR
    except Exception as exc:  # noqa: BLE001 - last resort: never a bare traceback for an admin
        if os.environ.get("EBAS_DEBUG"):
            raise
        _scrub(exc, argv)
        code = _fail(json_mode, "InternalError", f"unexpected {type(exc).__name__}: {exc}",
                     "this is a bug in ebas; rerun with EBAS_DEBUG=1 for details and report it", EXIT_ERROR)
    sys.exit(code)
