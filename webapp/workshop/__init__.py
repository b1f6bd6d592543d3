"""Workshops: an instructor, a room of learners who join with an access code, and the instructor's live view."""
