"""`sml`: a command-line client of the Serverless ML HTTP API (local server or a deployed stack)."""
