"""Browser-facing pages. Import the page module you mount (e.g. :mod:`bot.web.simulator`); this package
imports nothing itself, so one page's dependencies never load with another's."""
