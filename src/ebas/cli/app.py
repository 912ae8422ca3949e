"""The ``ebas`` command line: parse arguments, call :mod:`ebas.api`, print text or JSON.

Exit codes (also in README.md): 0 ok, 1 error, 2 usage, 3 partial (a backup could not read
some files; ``restore --skip-damaged`` could not restore some), 10 repository not found, 11 repository locked, 12 wrong password or
unusable key file, 13 integrity error (corrupt or tampered data), 130 interrupted.

The command modules import only ``ebas.api``, ``ebas.errors`` and ``ebas.progress``
(an import-linter contract in pyproject.toml holds this). ``ebas.api`` pulls in numpy,
zstd and the crypto libraries, so commands import it when they run: ``ebas --help``
stays fast.

Global options (:data:`GLOBAL_OPTIONS`) are accepted before or after the subcommand
(``ebas -q --repo X backup src`` and ``ebas backup -q --repo X src``); given twice, the
one nearer the end wins. With ``--json`` every failure, including a usage error caught by
the argument parser and an unexpected one, also prints the error object ``{"error",
"message", "hint", "exit_code"}`` on stdout (:func:`main`); credentials in store URLs are
scrubbed from every message.
"""

from __future__ import annotations

import json
import os
import sys

import click

from ebas import __version__
from ebas.cli.render import printable, printable_lines
from ebas.errors import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_USAGE, EbasError, UsageError

DISABLED = ("none", "off")  # --catalog values that turn the catalog off


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
        """The password as bytes from --password-file (an explicit option wins), EBAS_PASSWORD,
        EBAS_PASSWORD_FILE, or a prompt on a terminal."""
        if self.password_file:
            return read_password_file(self.password_file)
        return read_password("EBAS_PASSWORD", os.environ.get("EBAS_PASSWORD_FILE"), prompt, confirm,
                             hint="set EBAS_PASSWORD or EBAS_PASSWORD_FILE, or use --password-file")

    def url(self) -> str:
        """The repository URL from --repo or EBAS_REPOSITORY."""
        url = self.url_or_none()
        if not url:
            raise UsageError("no repository given", hint="use --repo URL or set EBAS_REPOSITORY")
        return url

    def url_or_none(self) -> str | None:
        """The repository URL if one was given."""
        return self.repo_url or os.environ.get("EBAS_REPOSITORY") or None

    def open_repo(self):
        """Open the repository (config, key) or raise a clear error; key warnings go to stderr."""
        from ebas import api

        repo = api.open_repository(self.url(), self.password())
        for w in repo.key_warnings:
            self.warn(w)
        repo.on_warning = self.warn  # warnings found later (e.g. a rejected local cache) show as they happen
        return repo

    def kdf(self, algorithm: str | None = None):
        """Key-derivation choice for new key files: the algorithm name (production
        parameters; None: the default). The CLI has no switch for weaker ones."""
        return algorithm

    # -------------------------------------------------------------- catalog
    def catalog_enabled(self) -> bool:
        """False when --catalog / EBAS_CATALOG is ``none`` or ``off``."""
        return (self.catalog or os.environ.get("EBAS_CATALOG") or "") not in DISABLED

    def catalog_location(self) -> str | None:
        """The catalog location (None: the default file in the cache directory)."""
        loc = self.catalog or os.environ.get("EBAS_CATALOG") or None
        return None if loc in DISABLED else loc

    def catalog_args(self, repo=None) -> dict:
        """Keyword arguments naming the catalog and its repository for the ``ebas.api`` catalog functions."""
        return {"catalog": self.catalog_location(), "site": os.environ.get("EBAS_SITE") or None, "repo": repo,
                "url": None if repo is not None else self.url_or_none()}

    # --------------------------------------------------------------- output
    def note(self, message: str) -> None:
        """A human message on stderr (suppressed by --quiet)."""
        if not self.quiet:
            click.echo(printable_lines(message), err=True)

    def warn(self, message: str) -> None:
        """A warning on stderr, also under --quiet (they concern the data's safety); with
        --json a JSON object ``{"type": "warning", "message": ...}`` on one line."""
        message = message.removeprefix("warning: ")
        if self.json:
            click.echo(json.dumps({"type": "warning", "message": message}), err=True)
        else:
            click.echo(f"warning: {printable_lines(message)}", err=True)

    def emit(self, data, text: str | None = None) -> None:
        """Print ``data`` (a result with ``to_json()``, or plain JSON data) with --json, else ``text`` (if any)."""
        if self.json:
            if hasattr(data, "to_json"):
                data = data.to_json()
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


read_secret_file = read_password_file  # the name the command modules use


def seconds(text: str) -> float:
    """A duration flag (``90s``, ``15min``, ``7d``; docs/units.md) in seconds."""
    from ebas.units import parse_duration

    return parse_duration(text)


# ------------------------------------------------------------ global options
def _remember(ctx: click.Context, param: click.Parameter, value) -> None:
    """Store an explicitly given global option where every command finds it."""
    if ctx.get_parameter_source(param.name) in (click.core.ParameterSource.DEFAULT, None) or value is None:
        return
    ctx.find_root().ensure_object(dict)[param.name] = value


def _global(*decls: str, **attrs) -> click.Option:
    opt = click.Option(list(decls), expose_value=False, callback=_remember, **attrs)
    opt.is_global = True
    return opt


def global_options() -> list[click.Option]:
    """Fresh copies of the options every command accepts, before or after its name."""
    return [
        _global("-r", "--repo", "repo", metavar="URL", help="repository URL or path (env EBAS_REPOSITORY)"),
        _global("--password-file", "password_file", metavar="FILE",
                help="read the password from FILE (wins over EBAS_PASSWORD; env EBAS_PASSWORD_FILE)"),
        _global("--catalog", "catalog", metavar="URL|PATH",
                help="catalog database: a SQLite path or postgresql://... (env EBAS_CATALOG; "
                     "default: a file in ~/.cache/ebas; 'none' disables it)"),
        _global("--json", "json", is_flag=True, default=None, help="print machine-readable JSON"),
        _global("-q", "--quiet", "quiet", is_flag=True, default=None, help="print only results and errors"),
    ]


GLOBAL_OPTIONS = tuple(o.name for o in global_options())


class _GlobalOptionsMixin:
    """Adds the global options to a command and lists them in their own help section."""

    def _add_globals(self) -> None:
        names = {n for p in self.params for n in getattr(p, "opts", [])}
        self.params.extend(o for o in global_options() if not names & set(o.opts))

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        own, shared = [], []
        for p in self.get_params(ctx):
            rec = p.get_help_record(ctx)
            if rec:
                (shared if getattr(p, "is_global", False) else own).append(rec)
        if own:
            with formatter.section("Options"):
                formatter.write_dl(own)
        if shared:
            with formatter.section("Global options (before or after the command)"):
                formatter.write_dl(shared)
        if isinstance(self, click.Group):
            self.format_commands(ctx, formatter)


class Command(_GlobalOptionsMixin, click.Command):
    """A command that accepts the global options too."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._add_globals()

    def invoke(self, ctx: click.Context):
        ctx.find_root().ensure_object(dict)["parsed"] = True  # errors from here on know the parsed --json
        return super().invoke(ctx)


class Group(_GlobalOptionsMixin, click.Group):
    """A group whose commands (and sub-groups) accept the global options."""

    command_class = Command
    group_class = type

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._add_globals()


def command(name: str | None = None, **attrs):
    """``click.command`` for ebas: the global options come with it."""
    return click.command(name, cls=Command, **attrs)


def group(name: str | None = None, **attrs):
    """``click.group`` for ebas: its commands and the group accept the global options."""
    return click.group(name, cls=Group, **attrs)


def wants_json(state: dict, argv: list[str]) -> bool:
    """Whether errors print JSON: the parsed ``--json`` once the command line was parsed;
    before that (a usage error) the best guess is a ``--json`` token before any ``--``."""
    if state.get("parsed"):
        return bool(state.get("json"))
    for token in argv:
        if token == "--":
            break
        if token == "--json":
            return True
    return False


def get_env(ctx: click.Context) -> Env:
    """The Env of this invocation."""
    obj = ctx.find_root().ensure_object(dict)
    return Env(obj.get("repo"), obj.get("password_file"), bool(obj.get("json")), bool(obj.get("quiet")),
               obj.get("catalog"))


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="ebas")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """ebas: deduplicating, encrypted, verifiable backups.

    \b
    Exit codes: 0 ok, 1 error, 2 usage, 3 partial (backup or restore --skip-damaged), 10 repository not found,
    11 locked, 12 wrong password / bad key file, 13 corrupt or tampered data, 130 interrupted.
    """
    ctx.ensure_object(dict)


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
        cmd_transfer,
    )

    for mod in (cmd_backup, cmd_restore, cmd_snapshots, cmd_keys, cmd_maint, cmd_catalog, cmd_retention, cmd_prune,
                cmd_copy, cmd_migrate, cmd_transfer):
        mod.register(cli)


_register()


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


def _scrub(exc: BaseException, argv: list[str]) -> None:
    """Remove the credentials of every store URL given to this invocation from ``exc``."""
    from ebas.api import scrub_exception  # imported on the error path only: start-up stays fast

    urls = [a.split("=", 1)[1] if a.startswith("-") and "=" in a else a for a in argv if "://" in a]
    scrub_exception(exc, urls + [os.environ.get("EBAS_REPOSITORY", "")])


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the CLI and turn errors into exit codes (and, with
    ``--json``, into the error object on stdout)."""
    args = list(sys.argv[1:] if argv is None else argv)
    state: dict = {}  # the root context's object: the parsed global options land here
    try:
        code = cli.main(args=args, prog_name="ebas", standalone_mode=False, obj=state) or 0  # ctx.exit(n) returns n
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("interrupted", err=True)
        code = _fail(wants_json(state, args), "Interrupted", "interrupted", "", EXIT_INTERRUPTED, text=False)
    except click.ClickException as exc:
        exc.show()
        usage = isinstance(exc, click.UsageError)
        where = exc.ctx.command_path if usage and exc.ctx is not None else "ebas"
        code = _fail(wants_json(state, args), "UsageError" if usage else type(exc).__name__, exc.format_message(),
                     f"see '{where} --help'" if usage else "", EXIT_USAGE if usage else exc.exit_code, text=False)
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except EbasError as exc:
        _scrub(exc, args)  # credentials in a store URL are never printed
        code = _fail(wants_json(state, args), type(exc).__name__, exc.message, exc.hint, exc.exit_code,
                     payload=exc.to_json())
    except BrokenPipeError:
        code = EXIT_ERROR
    except Exception as exc:  # noqa: BLE001 - last resort: never a bare traceback for an admin
        if os.environ.get("EBAS_DEBUG"):
            raise
        _scrub(exc, args)
        code = _fail(wants_json(state, args), "InternalError", f"unexpected {type(exc).__name__}: {exc}",
                     "this is a bug in ebas; rerun with EBAS_DEBUG=1 for details and report it", EXIT_ERROR)
    sys.exit(code)
