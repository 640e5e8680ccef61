"""The worker's task page: render the crowd-HTML template, lint it, preview it offline."""
