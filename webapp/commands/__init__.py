"""How labnb is run, kept apart from what it serves: the command line, the server process (gunicorn and
its request-head reader), the doctor and the service unit."""
