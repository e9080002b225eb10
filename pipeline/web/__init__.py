"""The web app: see docs/WEB.md."""
