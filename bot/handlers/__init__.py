"""Feature handlers: one Router per feature. ``bot/app.py`` decides their order."""
