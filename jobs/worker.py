"""Entry point for ``celery -A jobs.worker worker`` / ``beat``: the worker builds the Flask app."""

from app import create_app

flask_app = create_app()
celery = flask_app.extensions["celery"]
