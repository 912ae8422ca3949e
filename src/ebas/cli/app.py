"""The ``ebas`` command line: parse arguments, call the API, print text or JSON.

Exit codes (also in README.md): 0 ok, 1 error, 2 usage, 3 partial backup (some files
could not be read), 10 repository not found, 11 repository locked, 12 wrong password or
unusable key file, 13 integrity error (corrupt or tampered data), 130 interrupted.
Heavy modules (numpy, zstd, crypto, cloud SDKs) are imported inside commands so that
``ebas --help`` starts fast.
"""

from __future__ import annotations

import json
import os
import sys

import click

from ebas import __version__
from ebas.errors import EXIT_ERROR, EXIT_INTERRUPTED, EbasError, UsageError


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
        """The password from EBAS_PASSWORD, --password-file / EBAS_PASSWORD_FILE, or a prompt."""
        if os.environ.get("EBAS_PASSWORD") is not None:
            return os.environ["EBAS_PASSWORD"]
        path = self.password_file or os.environ.get("EBAS_PASSWORD_FILE")
        if path:
            try:
                with open(path, encoding="utf-8") as fh:
                    return fh.read().rstrip("\r\n")
            except OSError as exc:
                raise UsageError(f"cannot read password file {path!r}: {exc.strerror}") from exc
        if not sys.stdin.isatty():
            raise UsageError("no password given",
                             hint="set EBAS_PASSWORD or EBAS_PASSWORD_FILE, or use --password-file")
        return click.prompt(prompt, hide_input=True, confirmation_prompt=confirm, err=True)

    def url(self) -> str:
        """The repository URL from --repo or EBAS_REPOSITORY."""
        url = self.repo_url or os.environ.get("EBAS_REPOSITORY")
        if not url:
            raise UsageError("no repository given", hint="use --repo URL or set EBAS_REPOSITORY")
        return url

    def open_repo(self):
        """Open the repository (config, key) or raise a clear error."""
        from ebas.repo.repository import Repository
        from ebas.storage.registry import open_store
        from ebas.storage.stack import build_stack

        url = self.url()
        password = self.password()
        repo = Repository.open(build_stack(open_store(url)), password)
        for w in repo.key_warnings:
            self.note(f"warning: {w}")
        return repo

    # --------------------------------------------------------------- output
    def note(self, message: str) -> None:
        """A human message on stderr (suppressed by --quiet)."""
        if not self.quiet:
            click.echo(message, err=True)

    def emit(self, data, text: str | None = None) -> None:
        """Print ``data`` as JSON with --json, else ``text`` (if any)."""
        if self.json:
            # ASCII JSON: names that are not valid UTF-8 travel as \udcXX escapes, still valid JSON
            click.echo(json.dumps(data, indent=None if isinstance(data, list) and len(data) > 50 else 2,
                                  default=str, ensure_ascii=True))
        elif text is not None:
            click.echo(text)


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
    Exit codes: 0 ok, 1 error, 2 usage, 3 partial backup, 10 repository not found,
    11 locked, 12 wrong password / bad key file, 13 corrupt or tampered data, 130 interrupted.
    """
    obj = ctx.ensure_object(dict)
    obj.update(repo=repo, password_file=password_file, quiet=quiet, catalog=catalog)
    if json_out:
        obj["json"] = True


def _register() -> None:
    from ebas.cli import cmd_backup, cmd_catalog, cmd_copy, cmd_keys, cmd_maint, cmd_prune, cmd_restore, cmd_retention, cmd_snapshots

    for mod in (cmd_backup, cmd_restore, cmd_snapshots, cmd_keys, cmd_maint, cmd_catalog, cmd_retention, cmd_prune,
                cmd_copy):
        mod.register(cli)
    __import__("ebas.cli.cmd_transfer").cli.cmd_transfer.register(cli)


_register()


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the CLI and turn errors into exit codes."""
    json_mode = "--json" in (argv if argv is not None else sys.argv[1:])
    try:
        sys.exit(cli.main(args=argv, prog_name="ebas", standalone_mode=False) or 0)  # ctx.exit(n) returns n
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
        if json_mode:
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
