"""The command line: `dlrun` (main.py), its help, the project folder and `dlrun init`."""
