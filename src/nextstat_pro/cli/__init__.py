"""The command-line adapter (Typer + Rich): parses, calls the service layer, prints."""
