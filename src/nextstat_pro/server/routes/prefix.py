"""Where the API's routes live: each router carries the prefix itself, so a route's template (a
metric's label, a span's name) is its whole path."""

API_PREFIX = "/api/v1"
