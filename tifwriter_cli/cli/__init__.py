"""The ``tifwriter`` command line: one small module per subcommand.

Each ``cmd_*.py`` parses options, calls the library, formats the output.
Errors become exit codes in one place, :func:`.main.main`.
"""
