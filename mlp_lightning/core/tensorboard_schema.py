"""What both trainers write to TensorBoard: the tags, their step, the HPARAMS session.

One definition for the project (no torch here; the NumPy twin imports it):
- ``train/loss``, ``train/acc``: mean over the epoch's training batches, weighted by
  batch size, as measured during training (dropout on, weights changing);
- ``val/loss``, ``val/acc``: the whole validation split, eval mode, after the epoch;
- ``epoch``: the 0-based epoch index, beside them.
All five are written once per epoch at the step Lightning's TensorBoardLogger uses
for epoch-level metrics: the index of the epoch's last optimizer step.
With ``--log_every_n_steps N`` (N > 0) both also write ``train/loss_step``, the training
batch's loss (dropout on, before the update), at every Nth optimizer step's index, with
``epoch`` beside it, as Lightning logs a step metric.

Beside them each run writes the CUSTOM SCALARS tab's layout (train against val, one
chart per metric), its command line and configuration as text, and, for 2-D data, the
decision-boundary image at the epochs the console reports, at those epochs' steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tensorboard.compat.proto.summary_pb2 import Summary

# The tensorboard imports sit inside the functions that build protos: they take longer
# than numpy itself (the hparams plugin pulls in TensorBoard's TensorFlow stub), and the
# tag names below are wanted without them.

TRAIN_LOSS = "train/loss"
TRAIN_ACC = "train/acc"
VAL_LOSS = "val/loss"
VAL_ACC = "val/acc"
EPOCH = "epoch"
TRAIN_LOSS_STEP = "train/loss_step"  # only with --log_every_n_steps N > 0
METRIC_TAGS = (TRAIN_LOSS, TRAIN_ACC, VAL_LOSS, VAL_ACC)
ALL_TAGS = (*METRIC_TAGS, EPOCH)
DECISION_BOUNDARY = "val/decision_boundary"  # an image: regions and validation points
RUN_TEXT = "run/command_and_config"  # text: the command line and the resolved configuration

# The CUSTOM SCALARS tab, in the format of torch's ``SummaryWriter.add_custom_scalars``
# ({category: {chart: ["Multiline", [tag regexes]]}}): train and val on one chart per
# metric. A line is named by run and tag (``numpy/version_0`` ``val/loss``), so every
# run selected in the tab, of either trainer, adds its two lines to each chart.
CUSTOM_SCALARS_LAYOUT = {
    "train vs val": {
        "loss": ["Multiline", [f"^({TRAIN_LOSS}|{VAL_LOSS})$"]],
        "accuracy": ["Multiline", [f"^({TRAIN_ACC}|{VAL_ACC})$"]],
    }
}
LOSS_STEP_CHART = {"loss per step": ["Multiline", [f"^{TRAIN_LOSS_STEP}$"]]}


def custom_scalars_layout(per_step: bool = False) -> dict:
    """The CUSTOM SCALARS layout, with the per-step loss chart when the run logs ``TRAIN_LOSS_STEP``."""
    if not per_step:
        return CUSTOM_SCALARS_LAYOUT
    return {category: {**charts, **LOSS_STEP_CHART} for category, charts in CUSTOM_SCALARS_LAYOUT.items()}


def logs_steps(every_n_steps: int, step: int) -> bool:
    """Whether the optimizer step of 0-based index ``step`` writes ``TRAIN_LOSS_STEP`` (as Lightning does)."""
    return every_n_steps > 0 and (step + 1) % every_n_steps == 0


def epoch_end_step(epoch: int, steps_per_epoch: int) -> int:
    """Global step of epoch ``epoch``'s (0-based) metrics: its last optimizer step."""
    return (epoch + 1) * steps_per_epoch - 1


def hparams_session_start(hparams: dict[str, int | float | str | list], run_name: str) -> list[Summary]:
    """The HPARAMS tab's experiment config and session start, for ``hparams``.

    The metric columns are the four metric tags, so the tab shows each run's last
    values beside its hyperparameters. The tab holds numbers, strings and booleans:
    a list of names (``class_names``) is shown as one string, ``"setosa, versicolor"``.
    """
    from tensorboard.plugins.hparams import summary_v2 as hp_summary

    hparams = {k: ", ".join(v) if isinstance(v, (list, tuple)) else v for k, v in hparams.items()}

    config = hp_summary.hparams_config_pb(
        hparams=[hp_summary.HParam(name) for name in hparams],
        metrics=[hp_summary.Metric(tag) for tag in METRIC_TAGS],
    )
    start = hp_summary.hparams_pb(hparams, trial_id=run_name)
    return [config, start]


def hparams_session_end(status: str = "STATUS_SUCCESS") -> Summary:
    """Ends the session: ``STATUS_SUCCESS`` or ``STATUS_FAILURE`` (a stopped run, to be resumed, has none)."""
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.plugins.hparams import api_pb2
    from tensorboard.plugins.hparams import metadata as hp_metadata
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData, SessionEndInfo

    info = SessionEndInfo(status=api_pb2.Status.Value(status))
    metadata = hp_metadata.create_summary_metadata(HParamsPluginData(session_end_info=info))
    value = Summary.Value(
        tag=hp_metadata.SESSION_END_INFO_TAG, metadata=metadata, tensor=hp_metadata.NULL_TENSOR
    )
    return Summary(value=[value])


def custom_scalars_summary(per_step: bool = False) -> Summary:
    """``custom_scalars_layout(per_step)`` as the summary the custom-scalars plugin reads (torch's)."""
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.compat.proto.tensor_pb2 import TensorProto
    from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
    from tensorboard.plugins.custom_scalar import layout_pb2
    from tensorboard.plugins.custom_scalar import metadata as cs_metadata

    layout = layout_pb2.Layout(
        category=[
            layout_pb2.Category(
                title=category,
                chart=[
                    layout_pb2.Chart(title=title, multiline=layout_pb2.MultilineChartContent(tag=tags))
                    for title, (_, tags) in charts.items()
                ],
            )
            for category, charts in custom_scalars_layout(per_step).items()
        ]
    )
    tensor = TensorProto(
        dtype="DT_STRING", string_val=[layout.SerializeToString()], tensor_shape=TensorShapeProto()
    )
    value = Summary.Value(
        tag=cs_metadata.CONFIG_SUMMARY_TAG, tensor=tensor, metadata=cs_metadata.create_summary_metadata()
    )
    return Summary(value=[value])


# the decision-boundary images' class colours by name, in PALETTE's order (matplotlib's tab10)
COLOUR_NAMES = ("blue", "orange", "green", "red", "purple", "brown", "pink", "grey", "olive", "cyan")


def run_text(command: str, config_yaml: str, class_names: Sequence[str] = ()) -> str:
    """The RUN_TEXT entry, Markdown: the command line and the configuration, each as a code block,
    and the classes by name with the colour each has in the decision-boundary images."""
    import textwrap

    def block(text: str) -> str:
        return textwrap.indent(text.rstrip("\n"), "    ")

    config_heading = "configuration (what `--print_config` prints):"
    text = f"command:\n\n{block(command)}\n\n{config_heading}\n\n{block(config_yaml)}\n"
    if class_names:
        classes = "\n".join(
            f"{k}: {name} ({COLOUR_NAMES[k % len(COLOUR_NAMES)]})" for k, name in enumerate(class_names)
        )
        text += f"\nclasses (label: name (colour in the images)):\n\n{block(classes)}\n"
    return text


def text_summary(markdown: str) -> Summary:
    """A TEXT tab entry under RUN_TEXT (torch's ``add_text`` would rename the tag ``.../text_summary``)."""
    from tensorboard.plugins.text.summary_v2 import text_pb

    return text_pb(RUN_TEXT, markdown)


def image_summary(png: bytes, height: int, width: int) -> Summary:
    """An IMAGES tab entry under DECISION_BOUNDARY: an RGB PNG, as torch's ``add_image`` writes one."""
    from tensorboard.compat.proto.summary_pb2 import Summary

    image = Summary.Image(height=height, width=width, colorspace=3, encoded_image_string=png)
    return Summary(value=[Summary.Value(tag=DECISION_BOUNDARY, image=image)])
