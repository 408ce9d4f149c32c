"""Sandbox WeChat: a mock of the WeChat API server and an emulator of WeChat's webhook calls."""
