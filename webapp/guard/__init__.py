"""The web guard, one place every page and event passes: who may use them (tokens, cookies, admission),
how much of the server one client may take, and costly reads shared."""
