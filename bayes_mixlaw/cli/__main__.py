"""``python -m bayes_mixlaw.cli``: the command line (:data:`bayes_mixlaw.cli.app`)."""

from bayes_mixlaw.cli import app

app()
