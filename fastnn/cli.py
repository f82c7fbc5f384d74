"""The ``fastnn`` command: ``fastnn train`` and ``fastnn predict``."""

import argparse
import logging
import os
import signal
import sys
import tempfile
import threading
import time
import warnings
from contextlib import contextmanager

import numpy as np
from tqdm import tqdm

from . import datasets
from ._diagnostics import TrainingFailedWarning
from ._trainer import TrainingDivergedError
from ._validation import DTYPES, ENGINES

# scikit-learn and Numba (through the estimator) take seconds to import: the commands import them
# when they run, so that `fastnn --help` and bad arguments answer at once.

# The exit status of a process ended by Ctrl-C (128 + SIGINT), as shells report it.
INTERRUPTED = 130
DATA_HELP = ("digits (embedded, the default), mnist:FOLDER (the four IDX files, gzipped or not), "
             "csv:FILE (label in the first column) or npz:FILE (X and y, or x_train ... y_test)")
ACTIVATIONS = ("identity", "logistic", "tanh", "relu", "leaky_relu")
# The tutorial's initialisations, and scikit-learn's own (the estimator's init=None).
INITS = {"kaiming": "kaiming", "xavier": "xavier", "glorot": None}
SOLVERS = ("sgd", "adam", "lbfgs")
# The estimator's parameter that each option of `fastnn train` sets, to name the option in errors.
OPTION_OF = {"learning_rate_init": "--lr", "max_iter": "--epochs", "batch_size": "--batch-size",
             "hidden_layer_sizes": "--hidden", "momentum": "--momentum", "alpha": "--alpha",
             "n_threads": "--threads", "solver": "--solver"}
TEST_SIZE_HELP = "held-out fraction when the data has no test set (default: 0.2)"
SCALE_HELP = ("divide csv/npz features by 255: they are 8-bit pixels, as in Kaggle's MNIST CSV "
              "(default: keep them as they are; digits and MNIST IDX pixels are always scaled)")


def read_data(args):
    """The arrays of the ``--data`` spec, and how their features were scaled (said to the user)."""
    kind, _, path = args.data.partition(":")
    if kind == "digits" and not path:
        return datasets.load_digits(), "divided by 16 (the digits' pixel range)"
    if kind == "mnist" and path:
        if not args.download:
            datasets.check_mnist_folder(path, "add --download to fetch them")
        return datasets.load_mnist(path, download=args.download), "pixels divided by 255"
    if kind in ("csv", "npz") and path:
        loader = datasets.load_csv if kind == "csv" else datasets.load_npz
        scaling = ("divided by 255 (--scale-pixels)" if args.scale_pixels
                   else "none (--scale-pixels divides 8-bit pixels by 255)")
        return loader(path, scale=args.scale_pixels), scaling
    raise ValueError(f"--data must be {DATA_HELP}; got {args.data!r}")


def held_out_rows(y, test_size, seed):
    """Row indices ``(train, test)`` of the split that ``fastnn train`` holds out (stratified)."""
    from sklearn.model_selection import train_test_split

    return train_test_split(np.arange(len(y)), test_size=test_size, random_state=seed, stratify=y)


def split_data(parts, test_size, seed):
    """``(X_train, y_train, X_test, y_test)``; ``X_test`` is None if test_size is 0."""
    if len(parts) == 4:
        return parts
    X, y = parts
    if test_size == 0:
        return X, y, None, None
    train, test = held_out_rows(y, test_size, seed)
    return X[train], y[train], X[test], y[test]


def hidden_sizes(text):
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected widths like 128 or 128,64; got {text!r}") from None


def batch_size(text):
    """An int, "auto" (scikit-learn's min(200, n)) or "full" (every training sample)."""
    if text in ("full", "auto"):
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, 'auto' or 'full'; got {text!r}") from None


def test_size(text):
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1); got {text!r}")
    return value


def build_parser():
    parser = argparse.ArgumentParser(
        prog="fastnn", description="Train and use fastnn's multilayer perceptron.")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser(
        "train", help="train a model and report held-out accuracy",
        description="Train an MLP classifier and print per-epoch loss and time, then the held-out "
                    "accuracy. With no options: the embedded digits data set, plain SGD (the "
                    "tutorial's: no momentum, no L2 term) for 10 epochs.")
    add_data_arguments(train)
    train.add_argument("--hidden", type=hidden_sizes, default=(128,), metavar="W[,W...]",
                       help="hidden layer widths (default: 128)")
    train.add_argument("--activation", choices=ACTIVATIONS, default="relu")
    train.add_argument("--init", choices=list(INITS),
                       help="weight init: the tutorial's kaiming or xavier, or scikit-learn's glorot "
                            "(uniform) (default: kaiming for relu/leaky_relu, xavier otherwise)")
    train.add_argument("--solver", choices=SOLVERS, default="sgd", help="default: sgd")
    train.add_argument("--lr", type=float, default=0.1,
                       help="initial learning rate, learning_rate_init (default: 0.1)")
    train.add_argument("--momentum", type=float, default=0.0,
                       help="SGD's momentum (Nesterov's when > 0) (default: 0, plain SGD)")
    train.add_argument("--alpha", type=float, default=0.0, help="L2 penalty (default: 0)")
    train.add_argument("--batch-size", type=batch_size,
                       help="samples per step, 'full' for full-batch, 'auto' for min(200, n) "
                            "(default: 32, or all the samples if fewer)")
    train.add_argument("--epochs", type=int, default=10,
                       help="epochs (max_iter), all of them: no early stop (default: 10)")
    train.add_argument("--engine", choices=ENGINES, default="fast")
    train.add_argument("--dtype", choices=DTYPES, default="float32")
    train.add_argument("--seed", type=int, default=0, help="seeds init, shuffling and the split")
    train.add_argument("--test-size", type=test_size, default=0.2, help=TEST_SIZE_HELP)
    train.add_argument("--threads", type=int,
                       help="worker or BLAS threads (default: every core the environment allows)")
    train.add_argument("--save", metavar="MODEL.npz", help="write the trained model here")
    train.add_argument("--plot", metavar="CURVE.png",
                       help="write the loss and the held-out accuracy per epoch (needs matplotlib)")
    train.add_argument("--quiet", action="store_true", help="no progress bar and no per-epoch lines")

    predict = commands.add_parser(
        "predict", help="print a saved model's predicted labels",
        description="Print one predicted label per row of the data (of its test set if it has one); "
                    "the accuracy on the rows that training held out goes to stderr. Give --data, "
                    "--scale-pixels and --test-size as at training; the seed is the model's.")
    predict.add_argument("--model", required=True, metavar="MODEL.npz")
    add_data_arguments(predict)
    predict.add_argument("--test-size", type=test_size, default=0.2,
                         help=TEST_SIZE_HELP + "; 0 scores every row")
    predict.add_argument("--seed", type=int,
                         help="the split's seed (default: the model's random_state, as train sets it)")
    return parser


def add_data_arguments(command):
    command.add_argument("--data", default="digits", help=DATA_HELP)
    command.add_argument("--scale-pixels", action="store_true", help=SCALE_HELP)
    command.add_argument("--download", action="store_true",
                         help="fetch the MNIST files that mnist:FOLDER lacks (needs a network)")


def check_output(option, path):
    """Refuse an output file that could not be written, before a long training run."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise ValueError(f"{option} {path}: that is a folder; give a file name")
    if not os.path.isdir(folder):
        raise ValueError(f"{option} {path}: the folder {folder} does not exist")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise ValueError(f"{option} {path}: cannot write to the folder {folder} "
                         f"({error.strerror})") from error


def check_outputs(args):
    if args.save:
        check_output("--save", args.save)
        if not args.save.endswith(".npz"):  # np.savez would add the suffix behind the user's back
            raise ValueError(f"--save {args.save}: the file name must end in .npz")
    if args.plot:
        check_output("--plot", args.plot)
        try:
            import matplotlib.figure  # noqa: F401
        except ImportError:
            raise ImportError('--plot needs matplotlib: pip install "fastnn[plot]"') from None


class StopAfterEpoch:
    """SIGINT handler while training: the first Ctrl-C asks to stop after the current epoch
    (``requested``), a second one stops at once."""

    def __init__(self):
        self.requested = False

    def __call__(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nfastnn: stopping after this epoch (Ctrl-C again to stop at once)", file=sys.stderr)


class Stopped(Exception):
    """Raised from the epoch callback to end fit after the epoch that Ctrl-C interrupted."""


@contextmanager
def sigint_handler(handler):
    """Ctrl-C calls ``handler`` inside the block (in the main thread; elsewhere Python's default)."""
    if threading.current_thread() is not threading.main_thread():  # only it can take signals
        yield
        return
    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def init_of(args):
    """The estimator's ``init``: the option's, or Kaiming for the ReLU family, Xavier otherwise."""
    if args.init is None:
        return "kaiming" if args.activation in ("relu", "leaky_relu") else "xavier"
    return INITS[args.init]


# The tutorial's mini-batches: --batch-size's default.
DEFAULT_BATCH = 32


def batch_size_of(args, n_samples):
    """The estimator's ``batch_size``; a number above the training samples is refused (scikit-learn
    would clip it with a warning)."""
    if args.batch_size is None:
        return min(DEFAULT_BATCH, n_samples)
    if args.batch_size == "full":
        return n_samples
    if args.batch_size != "auto" and args.batch_size > n_samples:
        raise ValueError(f"--batch-size {args.batch_size}: there are {n_samples} training samples; "
                         f"give at most {n_samples}, or 'full'")
    return args.batch_size


def make_model(args, n_samples):
    from .estimator import MLPClassifier

    # n_iter_no_change=inf: exactly --epochs epochs, as the tutorial trains.
    return MLPClassifier(
        hidden_layer_sizes=args.hidden, activation=args.activation, init=init_of(args), solver=args.solver,
        learning_rate_init=args.lr, momentum=args.momentum, alpha=args.alpha,
        batch_size=batch_size_of(args, n_samples), max_iter=args.epochs, n_iter_no_change=float("inf"),
        engine=args.engine, dtype=args.dtype, random_state=args.seed, n_threads=args.threads)


def in_option_terms(error):
    """A message about a parameter (scikit-learn's or the estimator's), prefixed by the option that
    set it; any other error as it is."""
    message = str(error)
    for parameter, option in OPTION_OF.items():
        if f"'{parameter}' parameter" in message or message.startswith(f"{parameter} must be"):
            return ValueError(f"{option}: {message}")
    return error


def run_train(args):
    check_outputs(args)
    parts, scaling = read_data(args)
    X_train, y_train, X_test, y_test = split_data(parts, args.test_size, args.seed)
    model = make_model(args, X_train.shape[0])
    print(f"data: {args.data}, {X_train.shape[0]} training samples, {X_train.shape[1]} features; "
          f"engine {args.engine}, {args.dtype}")
    print(f"scaling: {scaling}")
    held_out = []  # accuracy per epoch, for the plot

    def score_held_out():
        if args.plot and X_test is not None:
            held_out.append(model.score(X_test, y_test))
            return held_out[-1]
        return None

    start = time.perf_counter()
    stopped = fit(model, X_train, y_train, args, after_epoch=score_held_out)
    total = time.perf_counter() - start
    if X_test is not None:
        print(f"held-out accuracy: {model.score(X_test, y_test):.4f} ({len(y_test)} samples)")
    print(f"total time: {total:.2f} s")
    if args.save:
        from . import _persist

        _persist.save(model, args.save, command_line={"scale_pixels": args.scale_pixels})
        so_far = f" trained so far ({model.n_iter_} epochs)" if stopped else ""
        print(f"model{so_far} saved to {args.save}")
    if args.plot:
        from .plot import learning_curve

        learning_curve(model, args.plot, held_out=held_out or None)
        print(f"learning curve saved to {args.plot}")
    return INTERRUPTED if stopped else 0


class _Lines(logging.Handler):
    def __init__(self, write):
        super().__init__(logging.INFO)
        self.write = write

    def emit(self, record):
        self.write(f"fastnn: {record.getMessage()}", file=sys.stderr)


@contextmanager
def notices_to(write):
    """Show what the library logs on the "fastnn" logger (e.g. that the first fit compiles the
    fast engine, which takes seconds) through ``write``, on stderr."""
    logger, handler = logging.getLogger("fastnn"), _Lines(write)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def fit(model, X, y, args, after_epoch):
    """Fit with a progress bar and a line per epoch; the first Ctrl-C stops after the current
    epoch. Returns whether it did."""
    # disable=None: no bar when stderr is not a terminal (logs, CI).
    bar = tqdm(total=args.epochs, unit="epoch", disable=True if args.quiet else None, leave=False)
    stop = StopAfterEpoch()

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.utils._param_validation import InvalidParameterError

    def report(record):
        bar.update()
        bar.set_postfix(loss=f"{record['loss']:.4f}")
        score = after_epoch()
        if not args.quiet:
            held_out = "" if score is None else f"  held-out accuracy {score:.4f}"
            bar.write(f"epoch {len(model.history_['loss']):>4}/{args.epochs}  loss {record['loss']:.4f}"
                      f"{held_out}  {record['time']:.3f} s")
        if stop.requested:
            raise Stopped

    try:
        with sigint_handler(stop), notices_to(bar.write), warnings.catch_warnings():
            warnings.simplefilter("error", TrainingFailedWarning)  # no held-out accuracy, no model saved
            # Training for exactly --epochs epochs is what was asked, not a failure to converge.
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X, y, on_epoch=report)
    except InvalidParameterError as error:
        raise in_option_terms(error) from None
    except ValueError as error:
        if type(error) is not ValueError:  # e.g. TrainingDivergedError, which main reports
            raise
        raise in_option_terms(error) from None
    except Stopped:
        print(f"interrupted after epoch {model.n_iter_} of {args.epochs}")
    finally:
        bar.close()
    return stop.requested


def run_predict(args):
    from . import _persist
    from .estimator import load

    model = load(args.model)
    if not hasattr(model, "classes_"):
        raise ValueError(f"{args.model} holds an {type(model).__name__}; fastnn predict prints the labels "
                         "of a classifier")
    scaled = _persist.read_command_line(args.model).get("scale_pixels")
    if scaled is not None and args.scale_pixels != scaled and args.data.partition(":")[0] in ("csv", "npz"):
        args.scale_pixels = scaled
        print(f"scaling: {'divided by 255' if scaled else 'none'}, as fastnn train read the data of this "
              f"model (it recorded --scale-pixels {'on' if scaled else 'off'})", file=sys.stderr)
    parts = read_data(args)[0]
    X, y = parts[2:] if len(parts) == 4 else parts
    labels = model.predict(X)
    sys.stdout.write("".join(f"{label}\n" for label in labels))
    rows, which = scored_rows(args, model, y, len(parts) == 4)
    print(f"accuracy: {np.mean(labels[rows] == y[rows]):.4f} on {which}", file=sys.stderr)
    return 0


def scored_rows(args, model, y, own_test_set):
    """The rows of ``y`` to score, those that training held out, and how to name them."""
    seed = model.random_state if args.seed is None else args.seed
    if own_test_set:
        return slice(None), f"the {len(y)} rows of the data's own test set"
    if args.test_size == 0:
        return slice(None), f"all {len(y)} rows (--test-size 0)"
    if seed is None:
        return slice(None), (f"all {len(y)} rows: the model file records no seed, so the rows held out "
                             "from its training are unknown (give --seed and --test-size as at training)")
    test = held_out_rows(y, args.test_size, seed)[1]
    return test, (f"the {len(test)} rows held out from training (--test-size {args.test_size:g}, "
                  f"--seed {seed}); the other {len(y) - len(test)} trained the model")


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return (run_train if args.command == "train" else run_predict)(args)
    except (ValueError, OSError, ImportError, TrainingDivergedError, TrainingFailedWarning) as error:
        print(f"fastnn: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("fastnn: interrupted; nothing saved", file=sys.stderr)
        return INTERRUPTED
