"""``python -m tifwriter_cli``: the same as the ``tifwriter`` command."""

from .cli.launch import main

if __name__ == '__main__':
    main()
