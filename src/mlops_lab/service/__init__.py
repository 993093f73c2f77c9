"""The prediction service: a Flask app on granian that serves the champion.

settings.py reads what it serves from config.yaml and the environment; loading.py loads and
compiles the model; schema.py and openapi.py are the API's contract; routes.py, errors.py and
metrics.py are the app's parts, which app.py puts together; server.py serves it."""
