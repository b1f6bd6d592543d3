"""Learners: each browser's learner, their lab host and a bench per lab, and the headless runner, so that
the web and ``labnb run`` run a lab's steps the same way."""
