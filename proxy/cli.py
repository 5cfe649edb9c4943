"""The `shadowdiff` command line."""

import typer

app = typer.Typer(no_args_is_help=True, help="shadowdiff: mirror traffic to V1 and V2, diff the responses, promote.")


def main() -> None:
    app()
