"""Small helpers shared by the CLI commands."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

err_console = Console(stderr=True)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print a clear error (no traceback) and exit. The message is printed as is: no markup, and no line
    breaks inside paths (the terminal wraps it)."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


def comma_list(text: str) -> list[str]:
    """``"a, b,c"`` -> ``["a", "b", "c"]``: comma-separated items, stripped, empty ones dropped."""
    return [x.strip() for x in text.split(",") if x.strip()]
