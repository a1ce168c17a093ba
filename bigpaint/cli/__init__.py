"""The ``bigpaint`` command: one thin subcommand per stage of the data flow.

Each subcommand module defines click commands that parse options into a typed config and
call one library function. Errors from bigpaint, and bad options of a subcommand, print as
one line and exit with status 2 (``--debug`` shows the traceback); unexpected errors exit 1
with a hint to use ``--debug``.
"""

from __future__ import annotations

import importlib
import sys

import click

from bigpaint.errors import STORAGE_ERRNOS, BigpaintError, storage_error

__all__ = ["cli", "main"]

# Modules under bigpaint.cli that each define ``register(group)``; one line per stage.
_COMMAND_MODULES = [
    "baseline",
    "bin",
    "deposit",
    "evaluate",
    "export",
    "fields",
    "fof",
    "ics",
    "paint",
    "painters",
    "quickstart",
    "run",
    "sample",
    "segment",
    "stats",
    "train",
]


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        debug = bool(ctx.params.get("debug"))
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:  # a bad option of a subcommand: one line, too
            if debug:
                raise
            where = exc.ctx.command_path if exc.ctx is not None else ctx.command_path
            click.echo(f"bigpaint: error: {exc.format_message()} (see {where} --help)", err=True)
            ctx.exit(2)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except BigpaintError as exc:
            if debug:
                raise
            click.echo(f"bigpaint: error: {exc}", err=True)
            ctx.exit(2)
        except KeyboardInterrupt:
            click.echo("bigpaint: interrupted; re-run the same command to resume", err=True)
            ctx.exit(130)
        except Exception as exc:
            if debug:
                raise
            if isinstance(exc, OSError) and exc.errno in STORAGE_ERRNOS and exc.filename:
                # last resort for a refusing file system that no reader or writer named itself
                click.echo(f"bigpaint: error: {storage_error(exc)}", err=True)
                ctx.exit(2)
            click.echo(
                f"bigpaint: unexpected error: {type(exc).__name__}: {exc} "
                "(re-run with --debug for the traceback)",
                err=True,
            )
            ctx.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages too (level and logger).")
@click.option("-q", "--quiet", is_flag=True, help="Log warnings and errors only: no progress.")
@click.version_option(package_name="bigpaint")
def cli(debug: bool, verbose: bool, quiet: bool) -> None:
    """bigpaint: paint mock halo, galaxy and gas fields over huge periodic boxes.

    Progress and stage messages go to stderr, each line stamped with the time: a bar on a
    terminal, plain lines in batch logs (every BIGPAINT_PROGRESS_INTERVAL seconds, default
    10).
    """
    from bigpaint.cli._logs import setup_logging
    from bigpaint.progress import interval

    if verbose and quiet:
        raise click.UsageError("--verbose and --quiet exclude each other; give one")
    setup_logging(verbose=verbose, quiet=quiet)
    interval()  # a bad BIGPAINT_PROGRESS_INTERVAL fails now, not after hours of work


for _name in _COMMAND_MODULES:
    importlib.import_module(f"bigpaint.cli.{_name}").register(cli)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``bigpaint`` console script."""
    cli.main(args=argv, prog_name="bigpaint", standalone_mode=True)


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
