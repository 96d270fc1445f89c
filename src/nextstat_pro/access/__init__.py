"""Who is asking and what they may do: the request context every service operation takes
(``context``) and the permission matrix it is authorized against (``rbac``). Below every
capability: identity, audit, runs, hub and scale depend on it, it depends on none of them."""
