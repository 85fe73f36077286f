"""The command line: LightningCLI's own subcommands (fit, validate, test, predict) on any LightningModule and
LightningDataModule, with flat flags from the chosen classes and the project's short names and presets.

``build_run`` parses and builds a :class:`~linear_pl.runner.run.Run`; ``cli_main`` runs it and prints.
"""

import argparse
import re
import sys
import traceback

import lightning as L
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.utilities.model_helpers import is_overridden

from linear_pl.runner import run as runs
from linear_pl.runner.blame import lightning_refused, raised_in_user_code
from linear_pl.runner.checkpoint_files import check_checkpoint_fits, load_checkpoint_safely, resolve_checkpoint
from linear_pl.runner.errors import UsageError, root_cause
from linear_pl.runner.flags import (
    accept_short_names,
    as_flag,
    chosen_classes,
    import_class,
    importable_from_cwd,
    init_parameters,
    nested_flat_flags,
    read_choices,
    what_was_rejected,
)
from linear_pl.runner.internals import CLASS_PATH_KEY, one_line
from linear_pl.runner.noise import silence_known_noise
from linear_pl.runner.project import Project, registered_project
from linear_pl.runner.run_flags import (
    add_export_flags,
    add_predict_flags,
    add_run_flags,
    add_serve_flags,
    check_trainer_flags,
)

HELP = {
    "fit": "fit: train (the default: `train.py` with no subcommand is `train.py fit`).",
    "validate": "validate --ckpt_path best|last|PATH: that checkpoint's run, on its validation data.",
    "test": "test --ckpt_path best|last|PATH: that checkpoint's run, on its test data.",
    "predict": "predict --ckpt_path best|last|PATH (--x ROWS | --input FILE | its data): print predictions.",
    "export": "export --ckpt_path best|last|PATH: write export/ (model.pt2, model.onnx, export.json) beside its "
    "checkpoints, each format checked against the model (--rtol, --atol) on its test data or --x/--input rows.",
    "serve": "serve --ckpt_path best|last|PATH [--format eager|pt2|onnx]: an HTTP server of its predictions.",
}
# The run prints its own plain progress lines (ProgressReport), and no model summary.
TRAINER_DEFAULTS = {"enable_progress_bar": False, "enable_model_summary": False}


# Lightning's Trainer with the commands this project adds to its four: LightningCLI makes a subcommand of a Trainer
# method of that name (its arguments become flags). The run, not the Trainer, does the work. (No docstring: --help
# heads the Trainer's flags with the class's, and Trainer's is the one to show.)
class RunTrainer(Trainer):
    # weights_only: the flag of Lightning's own commands, which a checkpoint's config.yaml (fit's) holds.
    def export(self, model: L.LightningModule, datamodule: L.LightningDataModule | None = None,
               ckpt_path: str | None = None, weights_only: bool | None = None) -> None:  # fmt: skip
        """Export the checkpoint's model: linear_pl.runner.export (``train.py export``)."""
        raise NotImplementedError("`train.py export` exports: linear_pl.runner.export.export(run)")

    def serve(self, model: L.LightningModule, datamodule: L.LightningDataModule | None = None,
              ckpt_path: str | None = None, weights_only: bool | None = None) -> None:  # fmt: skip
        """Serve the checkpoint's model over HTTP: linear_pl.runner.serve (``train.py serve``)."""
        raise NotImplementedError("`train.py serve` serves: linear_pl.runner.serve.serve(run)")


class OneLineErrorParser(LightningArgumentParser):
    """jsonargparse prints the usage and a multi-line message; this raises :class:`UsageError` with the
    message on one line."""

    def error(self, message: str, ex: Exception | None = None) -> None:
        if not self.exit_on_error:
            return super().error(message, ex)
        line = one_line(message)
        # --seed is the command's name for LightningCLI's seed_everything.
        seed = re.match(r'Parser key "seed_everything": .*Got value: (.*)', line)
        raise UsageError(f"--seed {seed[1]}: must be an integer" if seed else line)


class RunCLI(LightningCLI):
    """LightningCLI with the classes chosen before parsing (``read_choices``), whose subcommand builds a Run.

    ``parse_only``: parse the flags (``self.config``), build nothing (a sweep checks its base flags so).
    """

    def __init__(self, args: list[str], project: Project, classes: dict, parse_only: bool = False, **run) -> None:
        self.parse_only, self.run_options, self.run = parse_only, run, None
        self.asked = args[0]  # the subcommand: build_run puts it first
        self.classes = classes
        self.project = project.for_model(classes["model"])  # the project's run settings travel with its own model
        self.checkpoint = run.get("checkpoint")
        # validate, test and predict rebuild the checkpoint's model; fit resumes the model its flags describe.
        rebuilds = self.checkpoint is not None and args[0] != "fit"
        self.hparams = load_checkpoint_safely(self.checkpoint).get("hyper_parameters", {}) if rebuilds else {}
        # The project's defaults for its model go first, so that any config or flag after them overrides them.
        # (jsonargparse replaces init_args given in a subclass default by the class's own defaults.)
        taken = init_parameters(self.classes["model"])
        args = [args[0], *(f"--model.{k}={v}" for k, v in self.project.model_defaults.items() if k in taken), *args[1:]]
        kwargs = {"allow_abbrev": False, "formatter_class": argparse.RawDescriptionHelpFormatter}
        # The chosen model's project's description: another model's run is not described as the project's own.
        description = self.project.description
        described = {self.asked: {**kwargs, "description": f"{description}\n\n{HELP[self.asked]}"}}
        super().__init__(
            L.LightningModule,
            L.LightningDataModule,
            trainer_class=RunTrainer if self.asked not in LightningCLI.subcommands() else Trainer,
            subclass_mode_model=True,
            subclass_mode_data=True,
            run=not parse_only,
            args=args[1:] if parse_only else args,
            parser_class=OneLineErrorParser,
            parser_kwargs={**kwargs, "description": description, **described},
            trainer_defaults={**TRAINER_DEFAULTS, **self.project.trainer_defaults},
            seed_everything_default=0,
            save_config_callback=SaveConfigCallback,
            save_config_kwargs={"overwrite": True},
        )

    def subcommands(self) -> dict[str, set[str]]:
        # The one asked for: LightningCLI builds all four parsers, each with every Trainer, model and data flag,
        # 0.1 s of each run's start (each sweep trial's too). Its staticmethod is only called on the instance.
        # A command of RunTrainer's is handed the model and data as test is.
        return {self.asked: LightningCLI.subcommands().get(self.asked, {"model", "datamodule"})}

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        self.flat, self.shadowed = add_run_flags(parser, self.project, self.classes, self.hparams)
        accept_short_names(parser, self.project)
        if not self.parse_only and parser.description.endswith(HELP["predict"]):
            add_predict_flags(parser)
        if not self.parse_only and parser.description.endswith(HELP["export"]):
            add_export_flags(parser)
        if not self.parse_only and parser.description.endswith(HELP["serve"]):
            add_serve_flags(parser)

    def parse_arguments(self, parser: LightningArgumentParser, args: list[str]) -> None:
        try:
            # LightningCLI's own parse_arguments warns when the process has argv of its own.
            self.config = parser.parse_args(nested_flat_flags(args, self.flat))
        except UsageError as error:
            # A run flag that shadows a class's argument: the error names the flag that reaches the argument.
            said = [
                f"--{name} is the run's own flag; the {key[2:].split('.')[0]}'s {name} argument is {key}"
                for name, key in self.shadowed.items()
                if re.search(rf'Parser key "{name}[".]|--{name}\b', str(error))
            ]
            raise UsageError("; ".join([str(error), *said])) from None
        config = self.config if self.parse_only else self.config[self.config.subcommand]
        check_trainer_flags(config.trainer)
        if config.log_every_n_epochs < 1:
            raise UsageError(f"--log_every_n_epochs {config.log_every_n_epochs}: must be >= 1")
        # LightningCLI rebuilds the checkpoint's model from its hyperparameters (its _parse_ckpt_path) when
        # ckpt_path is a file: last and best are found here first. fit is handed the checkpoint by the run.
        if not self.parse_only:
            config.ckpt_path = str(self.checkpoint) if self.hparams else None
        if self.hparams:
            if (class_path := self.hparams.get(CLASS_PATH_KEY)) is not None:
                try:
                    import_class(class_path, "model", L.LightningModule)
                except UsageError as error:
                    what = str(error).removeprefix("--model ")
                    raise UsageError(f"--ckpt_path {self.checkpoint}: its model class {what}") from None
        if config.lr_scheduler is not None and config.optimizer is None:
            raise UsageError(
                "--lr_scheduler CLASS: give --optimizer CLASS too (LightningCLI schedules its own optimizer)"
            )

    def instantiate_classes(self) -> None:
        if self.parse_only:
            return
        # What Lightning, jsonargparse or a class's own checks (ValueError, UsageError) reject while the Trainer,
        # model and data are built is bad input: one line, exit 2. Anything else the user's code raises is their bug.
        try:
            super().instantiate_classes()
        except UsageError:
            raise
        except Exception as error:
            if raised_in_user_code(error) and not isinstance(root_cause(error), ValueError | UsageError):
                raise
            raise UsageError(as_flag(what_was_rejected(error), self.flat, self.classes)) from None

    def instantiate_trainer(self, **kwargs) -> Trainer:
        if self.subcommand != "fit":
            self.save_config_callback = None  # validate, test and predict write nothing
        self.run = runs.Run.start(self.subcommand, self.config[self.subcommand], **self.run_options)
        theirs = self.config_init[self.subcommand].trainer.get("callbacks") or []
        kwargs.update(self.run.trainer_arguments(theirs))
        try:
            return super().instantiate_trainer(**kwargs)
        except Exception:
            self.run.release()  # a Trainer flag was refused: nothing is left written
            raise

    def after_instantiate_classes(self) -> None:
        if self.parse_only:
            return
        self.run.built(self.trainer, self.model, self.datamodule)
        config = self.config[self.subcommand]
        # Lightning's own warning about this is filtered (silence_known_noise): this line says what it means.
        if (
            self.subcommand == "fit"
            and config.optimizer is not None
            and is_overridden("configure_optimizers", self.model)
        ):
            model = type(self.model).__name__
            chosen = config.optimizer.class_path.rsplit(".", 1)[-1]
            print(
                f"note: --optimizer {chosen} replaces {model}.configure_optimizers: its own optimizer and any "
                "scheduler it makes are not used (--lr_scheduler CLASS adds one)",
                file=sys.stderr,
            )

    # LightningCLI calls these, where present, in place of the Trainer's: here they only hand over the run.
    def fit(self, **kwargs) -> None:
        pass

    validate = test = predict = export = serve = fit


def build_run(args: list[str], project: Project | None = None, **run) -> "runs.Run":
    """Parse ``[subcommand] flags`` and build the run: trainer, model, data, checkpoints, monitor, run directory.

    ``run``: ``run_dir`` and ``callbacks`` for a caller that runs many in one process (a sweep's trials).
    """
    project = project or registered_project()
    args = list(args) if args[:1] and args[0] in HELP else ["fit", *args]
    choices = read_choices(args[1:], project)
    checkpoint = resolve_checkpoint(choices.ckpt_path, choices.root)
    if checkpoint is not None and args[0] != "fit":
        # The checkpoint's own run: its config first, then anything the command line says.
        config = checkpoint.parent.parent / "config.yaml"
        if config.is_file():
            one_device = ["--trainer.devices", "1", "--trainer.strategy", "auto", "--trainer.num_nodes", "1"]
            args = [args[0], "--config", str(config), *one_device, *args[1:]]
            choices = read_choices(args[1:], project)
    classes = chosen_classes(choices)
    if project.silence is not None and project.owns("data", classes["data"]):
        project.silence()
    cli = RunCLI(args, project, classes, checkpoint=checkpoint, given=args[1:], **run)
    if cli.run.checkpoint is not None:
        check_checkpoint_fits(checkpoint, load_checkpoint_safely(checkpoint), cli.model)
    return cli.run


def parse_flags(args: list[str], project: Project | None = None) -> RunCLI:
    """``fit``'s flags as LightningCLI parses them, nothing built (``.config``, ``.parser``, ``.classes``):
    for a sweep's checks, and its best.yaml."""
    project = project or registered_project()
    return RunCLI(["fit", *args], project, chosen_classes(read_choices(args, project)), parse_only=True)


def cli_main(args: list[str] | None = None, project: Project | None = None) -> int:
    """Run ``[fit|validate|test|predict|export|serve] flags``; returns the exit status."""
    importable_from_cwd()
    project = project or registered_project()
    silence_known_noise()
    args = sys.argv[1:] if args is None else list(args)
    run = None
    try:
        run = build_run(args, project)
        return runs.execute(run)
    except UsageError as error:
        print(f"error: {one_line(str(error))}", file=sys.stderr)
        return 2
    except Exception as error:
        if lightning_refused(error):
            print(f"error: {what_was_rejected(error)}", file=sys.stderr)
            return 2
        # The user's code raised (or ours did): the traceback shows where, and the line what is kept.
        traceback.print_exc()
        kept = "" if run is None else f"; {run.kept_checkpoints() if run.command == 'fit' else run.what_it_read()}"
        print(f"error: the run stopped on the exception above{kept}", file=sys.stderr)
        return 1
    finally:
        # Under DDP on CPU/gloo the process may abort at exit ("terminate called without an active
        # exception") unless the process group is torn down first; Lightning leaves it up after fit.
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
