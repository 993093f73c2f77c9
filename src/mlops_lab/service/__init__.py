"""The prediction service over HTTP: a Flask app on granian that serves the champion.

settings.py reads what it serves from config.yaml and the environment; following.py keeps the
champion loaded (serving/ loads and answers); openapi.py is the API's contract; routes.py,
errors.py and metrics.py are the app's parts, which app.py puts together; server.py serves it."""
