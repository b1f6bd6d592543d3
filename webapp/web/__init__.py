"""What serves the pages beyond the views themselves: static files under versioned URLs (``assets``)."""
