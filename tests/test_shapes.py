"""data=shapes: the rendered grid's geometry, its splits and factors, its one-line config errors,
and training on it with both models (tiny budgets)."""

import json
import math

import numpy as np
import pytest
import torch

from conftest import SMALL_METRICS, png_size, run_cli
from vae.data.splits import factor_grid_index
from vae.data.shapes import SHAPES, ShapesDataModule, grid_factors, render
from vae.errors import ConfigError
from vae.preflight import preflight
from vae.train import train

SQUARE, ELLIPSE, HEART = (SHAPES.index(name) for name in ("square", "ellipse", "heart"))


def one(shape, scale=0, orientation=0, x=0, y=0, *, side=32, sizes=(3, 1, 4, 1, 1)) -> np.ndarray:
    return render(np.array([[shape, scale, orientation, x, y]]), side, sizes)[0]


def test_each_shape_covers_its_area_and_stays_inside_the_image():
    # One sprite of radius 32 px (a quarter of 128) mid-image: pixel counts match the unit shapes'
    # areas (square 2 r², ellipse π r²/2, heart (2 + π/2) d² r² with d = 0.79) within 5% (pixelation).
    r = 32
    areas = {SQUARE: 2 * r * r, ELLIPSE: math.pi * r * r / 2, HEART: (2 + math.pi / 2) * 0.79 ** 2 * r * r}
    for shape, area in areas.items():
        image = one(shape, side=128)
        assert image.dtype == np.uint8 and set(np.unique(image)) == {0, 1}
        assert int(image.sum()) == pytest.approx(area, rel=0.05), SHAPES[shape]
    # The largest sprites at the grid's extreme positions stay inside the frame at every angle:
    # nothing is cut off, so every image of one shape and scale has the same area up to pixelation.
    sizes = (3, 1, 10, 2, 2)
    corners = np.array([[s, 0, o, x, y] for s in range(3) for o in range(10) for x in (0, 1) for y in (0, 1)])
    counts = render(corners, 32, sizes).reshape(3, -1, 32 * 32).sum(2)
    for shape in range(3):
        assert counts[shape].min() > 0.85 * areas[shape] / 16, SHAPES[shape]   # radius 8 px: area / 16


def test_orientation_rotates_and_position_translates_the_sprite():
    # Quarter turns about the image centre (one position = mid-image) map the pixel grid onto itself.
    for shape in range(3):
        assert np.array_equal(one(shape, orientation=1), np.rot90(one(shape, orientation=0))), SHAPES[shape]
        assert np.array_equal(one(shape, orientation=2), np.rot90(one(shape, orientation=0), 2)), SHAPES[shape]
    assert np.array_equal(one(SQUARE, orientation=1), one(SQUARE))        # a square repeats every quarter turn
    heart = one(HEART)
    assert np.array_equal(heart, heart[:, ::-1]) and not np.array_equal(heart, heart[::-1])  # point down
    # 17 positions over [8, 24] px are 1 px apart: the next x class is the same image shifted right.
    sizes = (3, 2, 4, 17, 17)
    a, b, c = (one(ELLIPSE, 1, 1, x, y, sizes=sizes) for x, y in ((3, 5), (4, 5), (3, 6)))
    assert np.array_equal(b, np.roll(a, 1, axis=1))
    assert np.array_equal(c, np.roll(a, 1, axis=0))                      # posY counts rows downwards
    assert one(SQUARE, scale=1, sizes=sizes).sum() > 3 * one(SQUARE, scale=0, sizes=sizes).sum()  # radius 4 -> 8 px


def test_splits_cover_the_grid_once_with_their_factors_labels_and_images():
    data = ShapesDataModule(image_size=16, scales=2, orientations=3, x_positions=4, y_positions=5,
                            val_size=50, test_size=40, batch_size=16)
    data.check_config()
    assert data.info.pixels == "binary" and data.info.image_shape == (1, 16, 16)
    assert data.info.factor_names == ("shape", "scale", "orientation", "posX", "posY")
    assert data.info.factor_sizes == (3, 2, 3, 4, 5) and data.info.num_classes == 3
    splits = data.load_splits()
    assert {name: len(s) for name, s in splits.items()} == {"val": 50, "test": 40, "train": 360 - 90}
    rows = np.concatenate([factor_grid_index(s.factors.numpy(), data.factor_sizes) for s in splits.values()])
    assert sorted(rows) == list(range(360))                          # disjoint, and all of the grid
    for s in splits.values():
        assert s.images.dtype == torch.uint8 and s.images.shape[1:] == (1, 16, 16)
        assert torch.equal(s.labels, s.factors[:, 0])
        assert torch.equal(data.images_from_factors(s.factors.numpy()), data.as_float(s.images))
    # The split is a function of split_seed only.
    again = ShapesDataModule(image_size=16, scales=2, orientations=3, x_positions=4, y_positions=5,
                             val_size=50, test_size=40).load_splits()
    other = ShapesDataModule(image_size=16, scales=2, orientations=3, x_positions=4, y_positions=5,
                             val_size=50, test_size=40, split_seed=1).load_splits()
    assert torch.equal(again["val"].factors, splits["val"].factors)
    assert not torch.equal(other["val"].factors, splits["val"].factors)
    # Sampled factors (what disentanglement metrics draw) render to images of the grid.
    sampled = data.sample_factors(7, np.random.default_rng(0))
    full = torch.from_numpy(render(grid_factors(data.factor_sizes), 16, data.factor_sizes)).unsqueeze(1).float()
    assert torch.equal(data.images_from_factors(sampled), full[factor_grid_index(sampled, data.factor_sizes)])


@pytest.mark.parametrize("override, expected", [
    ("data.image_size=30", "data.image_size=30 is invalid; it must be a multiple of 4 from 8 up"),
    ("data.orientations=0", "data.orientations=0 is invalid; it must be an integer ≥ 1"),
    ("data.test_size=50000", "data.val_size=1000 + data.test_size=50000 leave no training images of the "
                             "46080-image grid (3 × 6 × 10 × 16 × 16)"),
    ("data.batch_size=3000", "data.batch_size=3000 is larger than the 2000 training images"),
])
def test_a_bad_setting_is_one_line_before_anything_is_written(make_cfg, tmp_path, override, expected):
    cfg = make_cfg("data=shapes", override, output_dir=tmp_path / "run")
    with pytest.raises(ConfigError) as error:
        preflight(cfg)
    assert expected in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("model", ["mlp", "conv"])
def test_both_models_train_on_shapes_and_draw_figures_at_its_resolution(make_cfg, tmp_path, model):
    cfg = make_cfg("data=shapes", f"model={model}", "latent_size=2", "trainer.max_steps=20",
                   "trainer.val_check_interval=10", "eval.iwae_samples=2", "logger=csv", "data.test_size=500",
                   *SMALL_METRICS)
    metrics = train(cfg)
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record["status"] == "completed" and record["params"]["data"] == "shapes"
    assert metrics["steps"] == 20
    # Below a coin per pixel (1024 · log 2 = 710 nats): it learnt something of 32×32 binary images.
    assert 0 < metrics["test/neg_elbo"] < 1024 * math.log(2)
    # make_grid pads 2 px: 8 inputs over their 8 reconstructions are 8·34+2 wide, 2·34+2 high.
    assert png_size(tmp_path / "images" / "reconstructions.png") == (70, 274)
    assert png_size(tmp_path / "images" / "traversal_grid.png") == (11 * 34 + 2, 11 * 34 + 2)
    assert png_size(tmp_path / "images" / "latent_scatter.png") == (500, 500)   # coloured by shape


@pytest.mark.slow
def test_a_sweep_over_mnist_and_shapes_runs_both(tmp_path, data_dir):
    # One process (the basic launcher): the same sweep code path, without starting joblib workers.
    result = run_cli("-m", "data=mnist,shapes", "hydra/launcher=basic", "debug=smoke", "trainer.max_steps=20",
                     "trainer.val_check_interval=10", "eval.iwae_samples=2", "logger=csv", "report.enabled=false",
                     f"hydra.sweep.dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = {json.loads((job / "metrics.json").read_text())["params"]["data"]: job for job in tmp_path.glob("[0-9]*")}
    assert set(jobs) == {"mnist", "shapes"}
    for job in jobs.values():
        assert json.loads((job / "metrics.json").read_text())["status"] == "completed"
    # 64 prior samples, 8 a row, 2 px padding: each dataset's figures at its own resolution.
    assert png_size(jobs["mnist"] / "images" / "prior_samples.png") == (8 * 30 + 2, 8 * 30 + 2)
    assert png_size(jobs["shapes"] / "images" / "prior_samples.png") == (8 * 34 + 2, 8 * 34 + 2)
