"""Write docs/cli.md, the reference of every ``bigpaint`` command, from the click commands.

    python docs/make_cli_reference.py          # rewrite docs/cli.md
    python docs/make_cli_reference.py --check  # exit 1 if docs/cli.md is out of date

The text of each entry is what ``bigpaint ... --help`` prints (at a fixed width of 100
columns, so the file does not depend on the terminal); ``tests/deploy/test_docs.py`` fails
when a command changes and this file was not regenerated.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import click

OUT = Path(__file__).with_name("cli.md")
WIDTH = 100


def commands(
    group: click.Group, ctx: click.Context
) -> Iterator[tuple[str, click.Command, click.Context]]:
    """Every command below ``group`` (depth first, sorted), with its help context."""
    for name in sorted(group.list_commands(ctx)):
        cmd = group.get_command(ctx, name)
        if cmd is None or cmd.hidden:
            continue
        sub = click.Context(
            cmd, info_name=name, parent=ctx, terminal_width=WIDTH, max_content_width=WIDTH
        )
        yield sub.command_path, cmd, sub
        if isinstance(cmd, click.Group):
            yield from commands(cmd, sub)


def _root(cli: click.Group) -> click.Context:
    # the group's own context settings (``-h`` for help): click caches each command's help
    # option at its first use, so a bare context would print whatever ran first
    return click.Context(
        cli,
        info_name="bigpaint",
        terminal_width=WIDTH,
        max_content_width=WIDTH,
        **cli.context_settings,
    )


def command_paths() -> list[str]:
    """``bigpaint info``, ``bigpaint stats power``, ...: every registered command path."""
    from bigpaint.cli import cli

    root = _root(cli)
    return [path for path, _, _ in commands(cli, root)]


def render() -> str:
    """The Markdown reference of every command."""
    from bigpaint.cli import cli

    root = _root(cli)
    entries = list(commands(cli, root))
    lines = [
        "# Command reference",
        "",
        "Generated from the commands themselves by `python docs/make_cli_reference.py`; each",
        "entry is what `--help` prints. Errors print one line, `bigpaint: error: ...`, and exit",
        "with status 2; `bigpaint --debug ...` shows the traceback instead.",
        "",
        *(f"- [`{path}`](#{path.replace(' ', '-')})" for path, _, _ in entries),
        "",
        "## bigpaint",
        "",
        "```text",
        cli.get_help(root).rstrip(),
        "```",
    ]
    for path, cmd, ctx in entries:
        lines += ["", f"## {path}", "", "```text", cmd.get_help(ctx).rstrip(), "```"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    text = render()
    if "--check" in argv:
        if OUT.read_text() != text:
            print(f"{OUT} is out of date: run python docs/make_cli_reference.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
