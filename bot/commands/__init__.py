"""CLI subcommands of ``resident-bot``, one module per concern (see ``bot.cli``)."""
