"""The decision-boundary image: a valid PNG of what the model predicts, the same from both trainers."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image  # matplotlib's own dependency: an independent PNG decoder

from mlp_lightning.core.boundary_image import (
    CELL_PIXELS,
    IMAGE_SIZE,
    PALETTE,
    BoundaryImage,
    encode_png,
    image_palette,
)
from mlp_lightning.core.data import EVAL_CHUNK, load_splits
from mlp_lightning.core.hparams import HParams
from mlp_lightning.core.weights import PARAM_NAMES
from mlp_lightning.lightning.lit_module import MLPClassifier
from mlp_lightning.lightning.run_record import model_predict
from mlp_lightning.numpy_twin.step import empty_cache, predict
from mlp_lightning.numpy_twin.train import train
from tests.helpers import png_size, read_scalars, run_numpy


def decode(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def test_the_encoder_writes_a_png_that_pil_decodes_to_the_same_pixels():
    rng = np.random.default_rng(0)
    palette = rng.integers(0, 256, size=(21, 3), dtype=np.uint8)
    indices = rng.integers(0, len(palette), size=(37, 53), dtype=np.uint8)  # not square: rows vs columns
    png = encode_png(indices, palette)
    assert png_size(png) == (53, 37)
    np.testing.assert_array_equal(decode(png), palette[indices])


def test_the_image_colours_each_region_by_its_prediction_and_rings_only_the_misclassified_points():
    X = np.array([[-2.0, -2.0], [2.0, 2.0], [1.5, -1.5]], dtype=np.float32)
    y = np.array([0, 1, 0])  # the third point lies where the model says class 1: misclassified

    def right_half_is_class_1(points: np.ndarray) -> np.ndarray:
        return (points[:, 0] > 0).astype(np.intp)

    rgb = decode(BoundaryImage(X, y).png(right_half_is_class_1))
    assert rgb.shape == (IMAGE_SIZE, IMAGE_SIZE, 3)
    regions, points, ring = image_palette()[:10], PALETTE, image_palette()[-1]
    assert (rgb[0, 0] == regions[0]).all() and (rgb[-1, -1] == regions[1]).all()  # left: 0, right: 1
    half = IMAGE_SIZE // 2
    class1 = np.argwhere((rgb == points[1]).all(axis=2))  # the point (2, 2): top right
    assert len(class1) and (class1[:, 0] < half).all() and (class1[:, 1] > half).all()
    class0 = np.argwhere((rgb == points[0]).all(axis=2))  # (-2, -2) bottom left, (1.5, -1.5) bottom right
    assert (class0[:, 0] > half).all()
    assert (class0[:, 1] < half).any() and (class0[:, 1] > half).any()
    black = np.argwhere((rgb == ring).all(axis=2))  # the ring: around the bottom-right point alone
    assert len(black) and (black[:, 0] > half).all() and (black[:, 1] > half).all()


def test_both_trainers_draw_the_same_image_for_the_same_weights():
    hp = HParams(max_epochs=2)
    params = train(hp)  # part-trained: the boundary runs between the blobs
    *_, Xva, yva = load_splits(hp)
    buffers = empty_cache(EVAL_CHUNK, hp.dim, hp.hidden_dim, grad=False)
    image = BoundaryImage(Xva, yva)
    twin_png = image.png(lambda points: predict(params, points, buffers))

    module = MLPClassifier.from_hparams(hp)
    with torch.no_grad():
        for name in PARAM_NAMES:
            getattr(module.model, name).copy_(torch.from_numpy(params[name]))
    module.train()  # as during fit: the prediction must switch to eval mode and back
    lightning_png = image.png(lambda points: model_predict(module, points))
    assert module.training
    assert lightning_png == twin_png
    pixels = image.pixels(lambda points: predict(params, points, buffers))
    cells = pixels[::CELL_PIXELS, ::CELL_PIXELS]
    assert set(np.unique(cells)) >= {0, 1}  # both regions are in the picture


def test_a_run_on_data_of_other_dimensions_logs_no_image(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = run_numpy(["--dim", "3", "--max_epochs", "1", "--n_per_class", "40"], tmp_path)
    events = EventAccumulator(str(run_dir), size_guidance={"images": 0})
    events.Reload()
    assert events.Tags()["images"] == []
    assert read_scalars(run_dir)  # it trained and logged its scalars


def test_lightning_draws_in_eval_mode_without_touching_the_dropout_random_stream():
    module = MLPClassifier.from_hparams(HParams(dropout=0.5))
    module.train()
    points = np.random.default_rng(0).standard_normal((64, 2)).astype(np.float32)
    before = torch.get_rng_state()
    first = model_predict(module, points)
    assert torch.equal(torch.get_rng_state(), before)  # no dropout mask drawn: training's draws unchanged
    assert module.training
    np.testing.assert_array_equal(model_predict(module, points), first)  # deterministic: no dropout
