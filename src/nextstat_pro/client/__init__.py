"""The CLI's clients: ``base.Client`` (the interface), ``local.LocalClient`` (an instance on this
machine) and ``http.HttpClient`` (a server). Import the module you need: the local one imports the
service layer and database drivers, the HTTP one httpx."""
