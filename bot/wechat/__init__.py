"""The WeChat edge: signatures, AES, XML ⇄ typed events, dedup, the 5-second rule, outbound API."""
