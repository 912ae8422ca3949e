"""The ``ebas`` command line: parse arguments, call :mod:`ebas.api`, print text or JSON.

Exit codes (also in README.md): 0 ok, 1 error, 2 usage, 3 partial backup (some files
could not be read), 10 repository not found, 11 repository locked, 12 wrong password or
unusable key file, 13 integrity error (corrupt or tampered data), 130 interrupted.

The command modules import only ``ebas.api``, ``ebas.errors`` and ``ebas.progress``
(an import-linter contract in pyproject.toml holds this). ``ebas.api`` pulls in numpy,
zstd and the crypto libraries, so commands import it when they run: ``ebas --help``
stays fast.

Global options (:data:`GLOBAL_OPTIONS`) are accepted before or after the subcommand
(``ebas -q --repo X backup src`` and ``ebas backup -q --repo X src``); given twice, the
one nearer the end wins.
"""

from __future__ import annotations

import json
import os
import sys

import click

from ebas import __version__
from ebas.errors import EXIT_ERROR, EXIT_INTERRUPTED, EbasError, UsageError

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
    def password(self, prompt: str = "repository password", confirm: bool = False) -> str:
        """The password from --password-file (an explicit option wins), EBAS_PASSWORD,
        EBAS_PASSWORD_FILE, or a prompt on a terminal."""
        path = self.password_file
        if not path:
            if os.environ.get("EBAS_PASSWORD") is not None:
                return os.environ["EBAS_PASSWORD"]
            path = os.environ.get("EBAS_PASSWORD_FILE")
        if path:
            return read_secret_file(path)
        if not sys.stdin.isatty():
            raise UsageError("no password given",
                             hint="set EBAS_PASSWORD or EBAS_PASSWORD_FILE, or use --password-file")
        return click.prompt(prompt, hide_input=True, confirmation_prompt=confirm, err=True)

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
            self.note(f"warning: {w}")
        return repo

    def kdf(self, algorithm: str | None = None):
        """Key-derivation choice for new key files: the algorithm name (production
        parameters; None: the default), or tiny parameters when EBAS_TEST_FAST_KDF is set
        (test suites only)."""
        if not os.environ.get("EBAS_TEST_FAST_KDF"):
            return algorithm
        from ebas import api

        return api.KdfParams.fast_for_tests(api.SYSTEM_ENTROPY, algorithm or "argon2id")

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
            click.echo(message, err=True)

    def warn(self, message: str) -> None:
        """A warning on stderr (shown even with --quiet)."""
        click.echo(message, err=True)

    def emit(self, data, text: str | None = None) -> None:
        """Print ``data`` (a result with ``to_json()``, or plain JSON data) with --json, else ``text`` (if any)."""
        if self.json:
            if hasattr(data, "to_json"):
                data = data.to_json()
            # ASCII JSON: names that are not valid UTF-8 travel as \udcXX escapes, still valid JSON
            click.echo(json.dumps(data, indent=None if isinstance(data, list) and len(data) > 50 else 2,
                                  default=str, ensure_ascii=True))
        elif text is not None:
            click.echo(text)


def read_secret_file(path: str) -> str:
    """The first line of a password file (without its line end)."""
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read().rstrip("\r\n")
    except OSError as exc:
        raise UsageError(f"cannot read password file {path!r}: {exc.strerror}") from exc


def seconds(text: str) -> float:
    """A duration flag (``90s``, ``15min``, ``7d``) in seconds."""
    from ebas import api

    return api.parse_duration(text) / 1e9


def nanoseconds(text: str) -> int:
    """A duration flag in nanoseconds (for the API arguments still counted in ns)."""
    from ebas import api

    return api.parse_duration(text)


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
    Exit codes: 0 ok, 1 error, 2 usage, 3 partial backup, 10 repository not found,
    11 locked, 12 wrong password / bad key file, 13 corrupt or tampered data, 130 interrupted.
    """
    ctx.ensure_object(dict)


def _register() -> None:
    from ebas.cli import cmd_backup, cmd_catalog, cmd_copy, cmd_keys, cmd_maint, cmd_prune, cmd_restore, cmd_retention, cmd_snapshots

    for mod in (cmd_backup, cmd_restore, cmd_snapshots, cmd_keys, cmd_maint, cmd_catalog, cmd_retention, cmd_prune,
                cmd_copy):
        mod.register(cli)


_register()


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the CLI and turn errors into exit codes."""
    args = list(sys.argv[1:] if argv is None else argv)
    state: dict = {}  # the root context's object: the parsed global options land here
    try:
        sys.exit(cli.main(args=args, prog_name="ebas", standalone_mode=False, obj=state) or 0)  # ctx.exit(n) returns n
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2 if isinstance(exc, click.UsageError) else exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except EbasError as exc:
        click.echo(f"error: {exc.render()}", err=True)
        if wants_json(state, args):
            click.echo(json.dumps(exc.to_json()))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except BrokenPipeError:
        sys.exit(EXIT_ERROR)
    except Exception as exc:  # noqa: BLE001 - last resort: never a bare traceback for an admin
        if os.environ.get("EBAS_DEBUG"):
            raise
        click.echo(f"error: unexpected {type(exc).__name__}: {exc}\n  hint: this is a bug in ebas; "
                   "rerun with EBAS_DEBUG=1 for details and report it", err=True)
        sys.exit(EXIT_ERROR)
