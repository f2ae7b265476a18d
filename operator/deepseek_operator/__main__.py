"""`python -m deepseek_operator`: the `dsd` command line."""

from deepseek_operator.cli import app

app()
