"""`sml` and its Python SDK: a client of the Serverless ML HTTP API (a local server or a deployed stack).

from mlclient import Client
sml = Client()          # SML_URL / SML_API_KEY / SML_STACK, else the local server
"""

from .api import ApiError, RunFailed, SmlError
from .sdk import Client, Predictions

__all__ = ["ApiError", "Client", "Predictions", "RunFailed", "SmlError"]
