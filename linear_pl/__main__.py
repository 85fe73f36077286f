"""The ``linear-pl`` command (also ``python -m linear_pl``): ``linear-pl COMMAND [flags]``.

``fit``, ``validate``, ``test``, ``predict``, ``export`` and ``serve`` are ``scripts/train.py``'s (``predict`` is also
``scripts/predict.py``), and ``sweep`` is ``scripts/sweep.py``: the same functions, the same flags.
"""

import gc
import sys

USAGE = (
    "usage: linear-pl {fit,validate,test,predict,export,serve,sweep} [flags]"
    "   (linear-pl fit --help, linear-pl sweep --help)"
)


def main(argv: list[str] | None = None) -> int:
    """Run the subcommand named by the first argument; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    command, rest = (argv[0], argv[1:]) if argv else (None, [])
    if command in ("fit", "validate", "test", "predict", "export", "serve"):
        from linear_pl.runner.cli import cli_main  # noqa: PLC0415 -- import Lightning only when needed

        return cli_main([command, *rest])
    if command == "sweep":
        try:
            from linear_pl.sweep import main as sweep_main  # noqa: PLC0415
        except ModuleNotFoundError as error:  # a project `new` wrote without --sweep
            if error.name != "linear_pl.sweep":
                raise
            print("error: sweep: this project has no sweep package; its README.md says how to add it", file=sys.stderr)
            return 2
        return sweep_main(rest)
    if command == "new":  # writes a new project; new_project.py leaves this branch out of the copy it makes
        from linear_pl.new_project import new_main  # noqa: PLC0415

        return new_main(rest)
    if command in ("-h", "--help"):
        print(USAGE)
        return 0
    choices = "fit, validate, test, predict, export, serve or sweep"
    print(f"error: {command or 'no command'}: choose {choices}\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    status = main()
    gc.freeze()  # Python's exit less its last garbage collections: see scripts/train.py
    sys.exit(status)
