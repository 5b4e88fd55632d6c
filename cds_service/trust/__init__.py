"""Who may call: the trust file, JWT authentication and replay protection."""
