"""resident-bot: WeChat official-account gateway and chatbot for community resident services."""

__version__ = "0.1.0"
