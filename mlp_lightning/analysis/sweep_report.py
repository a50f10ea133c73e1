"""What a sweep found, per configuration (every hyperparameter but the seed): each trainer's final val
loss and accuracy as mean ± sd over seeds, the twins' difference paired by seed with its 95% t
interval, whether they agree by the rule the tests apply, and a figure of the final val losses.

The verdict, one line: a seed both trainers ran is a pair of twins (the same data, weights, batches and
dropout masks), held to compare.py --check's exact rule at any dropout. Where no seed was run by both,
the runs are not twins of each other and only their distributions compare: Welch's two-sample t-test
on the final val loss at the 5% level (a false alarm in ~5% of sweeps of 10 seeds, statistics.py).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mlp_lightning.analysis.compare import LOSS_TOLERANCE, within_parity
from mlp_lightning.analysis.logged_run import Run
from mlp_lightning.analysis.statistics import WELCH_ALPHA, mean_interval, mean_sd, welch_test
from mlp_lightning.core.hparams import HParams, hparam_names
from mlp_lightning.core.quoted import quoted_text
from mlp_lightning.core.tensorboard_schema import VAL_ACC, VAL_LOSS
from mlp_lightning.runs.files import atomic_write_bytes
from mlp_lightning.runs.sweep import TRAINERS, hparams_key, read_stored_hparams

FIGURE = "sweep_val_loss.png"
LEVEL = 0.95  # of the difference's confidence interval
TWIN, LIGHTNING = TRAINERS


@dataclass
class Configuration:
    hparams: dict  # every stored hyperparameter but the seed
    runs: dict[str, dict[int, Run]] = field(default_factory=dict)  # trainer -> seed -> run

    def finals(self, trainer: str, seeds: list[int] | None = None) -> np.ndarray:
        """(seeds, [final val loss, final val acc]) of ``trainer``'s runs, by ascending seed."""
        by_seed = self.runs.get(trainer, {})
        chosen = sorted(by_seed) if seeds is None else seeds
        return np.array([[by_seed[s].scalars[VAL_LOSS][-1], by_seed[s].scalars[VAL_ACC][-1]] for s in chosen])

    @property
    def paired_seeds(self) -> list[int]:
        return sorted(set(self.runs.get(TWIN, {})) & set(self.runs.get(LIGHTNING, {})))


def configurations(runs: list[Run]) -> list[Configuration]:
    """The runs grouped by their hyperparameters but the seed, in the order first met (newest run wins)."""
    groups: dict[tuple, Configuration] = {}
    for run in sorted(runs, key=lambda r: r.started):
        stored = dict(read_stored_hparams(run.path) or {})
        seed = stored.pop("seed", None)
        key = hparams_key(stored) or tuple(sorted((k, repr(v)) for k, v in stored.items()))
        group = groups.setdefault(key, Configuration(stored))
        group.runs.setdefault(run.path.parent.name, {})[seed] = run
    return list(groups.values())


def labels(groups: list[Configuration]) -> tuple[list[str], str]:
    """Each configuration's ``dropout=0.5`` (the hyperparameters that tell them apart), and what they
    share away from the defaults (``n_per_class=20 max_epochs=2``; empty if nothing)."""
    defaults = HParams().as_dict()
    names = dict.fromkeys((*hparam_names(), *sorted({k for g in groups for k in g.hparams})))
    names.pop("seed", None)
    varying = [n for n in names if len({repr(g.hparams.get(n)) for g in groups}) > 1]
    shared = [
        n for n in names if n not in varying and groups[0].hparams.get(n, defaults.get(n)) != defaults.get(n)
    ]
    # the values come from the runs' hparams.yaml, which may be someone else's: escaped, bounded
    shared_label = " ".join(f"{n}={quoted_text(str(groups[0].hparams.get(n)))}" for n in shared)
    if not varying:  # one configuration: it is named by what it changes
        return [shared_label or "the defaults"], ""
    return [
        " ".join(f"{n}={quoted_text(str(g.hparams.get(n)))}" for n in varying) for g in groups
    ], shared_label


def verdict(group: Configuration) -> tuple[bool | None, str]:
    """Whether the twins agree on this configuration (None: not enough runs to say), and why, in one line."""
    seeds = group.paired_seeds
    if seeds:  # twins at any dropout: exact parity at every epoch (compare.py --check's rule)
        broken = [f"seed {s}: {'; '.join(b)}" for s in seeds if (b := within_parity(*_pair(group, s)))]
        if broken:
            shown = " | ".join(broken[:3]) + (f" | and {len(broken) - 3} more" if len(broken) > 3 else "")
            return False, f"exact parity is broken for {len(broken)} of {len(seeds)} seeds: {shown}"
        return True, (
            f"exact at --dropout {group.hparams.get('dropout', HParams.dropout):g}: at every epoch of "
            f"{len(seeds)} of {len(seeds)} seeds the losses are within {LOSS_TOLERANCE:g} and the "
            "accuracies equal"
        )
    twin, lit = group.runs.get(TWIN, {}), group.runs.get(LIGHTNING, {})
    if len(twin) < 2 or len(lit) < 2:
        return None, "no seed was trained by both trainers, and a two-sample test needs 2 seeds of each"
    test = welch_test(group.finals(TWIN)[:, 0], group.finals(LIGHTNING)[:, 0])
    return test.same, (
        f"no seed run by both, so in distribution: Welch's t-test of the final val loss's mean at the "
        f"{WELCH_ALPHA:.0%} level ({len(twin)} vs {len(lit)} seeds): {test}"
    )


def _pair(group: Configuration, seed: int) -> tuple[Run, Run]:
    return group.runs[TWIN][seed], group.runs[LIGHTNING][seed]


def _mean_sd(values: np.ndarray, digits: int) -> str:
    mean, sd = mean_sd(values)
    return f"{mean:.{digits}f} ± {sd:#.2g}" if not math.isnan(sd) else f"{mean:.{digits}f} (1 seed)"


def _interval(values: np.ndarray) -> str:
    ci = mean_interval(values, LEVEL)
    return f"{ci.mean:+.2e} [{ci.lo:+.2e}, {ci.hi:+.2e}]" if ci.n > 1 else f"{ci.mean:+.2e} (1 seed)"


def format_configuration(group: Configuration, label: str) -> str:
    lines = [label]
    lines.append(f"  {'trainer':<18} {'final val loss':<34} {'final val acc':<34} seeds")
    for trainer in TRAINERS:
        if group.runs.get(trainer):
            finals, seeds = group.finals(trainer), sorted(group.runs[trainer])
            lines.append(
                f"  {trainer:<18} {_mean_sd(finals[:, 0], 4):<34} {_mean_sd(finals[:, 1], 4):<34} "
                + " ".join(map(str, seeds))
            )
    seeds = group.paired_seeds
    if seeds:
        d = group.finals(TWIN, seeds) - group.finals(LIGHTNING, seeds)
        lines.append(f"  {'numpy - lightning':<18} {_interval(d[:, 0]):<34} {_interval(d[:, 1]):<34} paired")
    ok, why = verdict(group)
    word = {True: "the twins agree", False: "the twins DISAGREE", None: "no verdict"}[ok]
    lines.append(f"  verdict: {word}: {why}")
    return "\n".join(lines)


def write_figure(groups: list[Configuration], names: list[str], shared: str, path: Path) -> Path:
    """Final val loss per configuration: each trainer's seeds as dots, their mean ± sd as a bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(5.0, 1.6 * len(groups) + 2), 4))
    x = np.arange(len(groups))
    for shift, trainer, color in ((-0.12, TWIN, "tab:blue"), (0.12, LIGHTNING, "tab:orange")):
        label = trainer  # once per trainer in the legend
        for i, group in enumerate(groups):
            if not group.runs.get(trainer):
                continue
            losses = group.finals(trainer)[:, 0]
            mean, sd = mean_sd(losses)
            ax.scatter(np.full(len(losses), x[i] + shift), losses, color=color, s=10, alpha=0.5)
            yerr = 0.0 if math.isnan(sd) else sd
            ax.errorbar(x[i] + shift, mean, yerr=yerr, fmt="o", color=color, capsize=4, label=label)
            label = None
    ax.set_xticks(x, [name.replace(" ", "\n") for name in names], fontsize=8)
    title = "final val loss (dots: seeds; bars: mean ± sd)"
    ax.set(ylabel="final val loss", title=f"{title}\n{shared}" if shared else title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    atomic_write_bytes(buffer.getvalue(), Path(path))  # a refused write leaves no half figure
    return Path(path)


def report(runs: list[Run], logdir: Path) -> list[Configuration]:
    """Print a table per configuration and write the figure into ``logdir``; the configurations."""
    groups = configurations(runs)
    if not groups:
        print(f"no finished runs under {logdir} to report")
        return groups
    names, shared = labels(groups)
    if shared:
        print(f"every configuration: {shared}\n")
    print("\n\n".join(format_configuration(g, n) for g, n in zip(groups, names, strict=True)))
    print(
        f"\n(mean ± sd over seeds; the difference: mean over the seeds both trained [{LEVEL:.0%} t interval])"
    )
    print(f"figure: {write_figure(groups, names, shared, Path(logdir) / FIGURE)}")
    return groups
