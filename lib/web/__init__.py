"""The web interface: a Flask app over the recommendation engine (`create_app`)."""
from lib.web.app import create_app

__all__ = ["create_app"]
