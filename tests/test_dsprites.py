"""data=dsprites on a small npz of the real file's layout that the tests write (the real file cannot
be downloaded here): loading, splits without copies, factors, the MD5 check, the download and
offline paths, the one-line errors, and training with both models."""

import functools
import hashlib
import http.server
import json
import pathlib
import threading

import numpy as np
import pytest
import torch

from conftest import SMALL_METRICS, png_size, run_cli
from vae.data.splits import factor_grid_index
from vae.data.dsprites import FILE_NAME, MD5, DSpritesDataModule
from vae.errors import ConfigError, DataError
from vae.preflight import preflight
from vae.train import train

SIZES = (3, 2, 2, 4, 4)          # shape, scale, orientation, posX, posY: 192 images
N = int(np.prod(SIZES))
CLOSED_PORT_URL = "http://127.0.0.1:9/" + FILE_NAME   # refused at once: offline, whatever the machine


class RunsCodeWhenUnpickled:
    """The real file's `metadata` is a pickle; this one would leave a marker file if unpickled."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


def write_small_dsprites(folder: pathlib.Path) -> tuple[pathlib.Path, str]:
    """A reduced grid in dSprites' layout: same array names, dtypes and row-major order, 64×64
    images. Each image shows its grid row number in binary (first row of pixels) above a block
    placed by posX/posY and sized by scale, so a test can tell which image it got."""
    classes = np.concatenate([np.zeros((N, 1), np.int64), np.indices(SIZES).reshape(5, -1).T], axis=1)
    images = np.zeros((N, 64, 64), np.uint8)
    for row, (_, shape, scale, orientation, x, y) in enumerate(classes):
        images[row, 0, :8] = [(row >> bit) & 1 for bit in range(8)]
        side = 6 + 4 * scale + 2 * shape
        images[row, 8 + 12 * y: 8 + 12 * y + side, 8 + 12 * x: 8 + 12 * x + side + 2 * orientation] = 1
    path = folder / "dsprites" / FILE_NAME
    path.parent.mkdir(parents=True)
    np.savez_compressed(path, imgs=images, latents_classes=classes, latents_values=classes.astype(np.float64),
                        metadata=np.array(RunsCodeWhenUnpickled(folder / "unpickled"), dtype=object))
    return path, hashlib.md5(path.read_bytes()).hexdigest()


def shown_row(images: torch.Tensor) -> np.ndarray:
    bits = images[:, 0, 0, :8].to(torch.int64).numpy()
    return (bits << np.arange(8)).sum(1)


@pytest.fixture
def small(tmp_path) -> tuple[pathlib.Path, str]:
    path, md5 = write_small_dsprites(tmp_path / "data")
    return tmp_path / "data", md5


def datamodule(data_dir, md5, **kwargs) -> DSpritesDataModule:
    settings = dict(data_dir=str(data_dir), md5=md5, factor_sizes=SIZES, val_size=20, test_size=30,
                    batch_size=16, download=False) | kwargs
    return DSpritesDataModule(**settings)


def test_splits_are_slices_of_one_loaded_array_with_their_factors(small):
    data_dir, md5 = small
    data = datamodule(data_dir, md5)
    data.check_config()
    assert data.info.image_shape == (1, 64, 64) and data.info.pixels == "binary" and data.info.label_name == "shape"
    assert data.info.factor_names == ("shape", "scale", "orientation", "posX", "posY") and data.factor_sizes == SIZES
    splits = data.load_splits()
    assert {name: len(splits[name]) for name in ("train", "val", "test", "all")} == {
        "train": N - 50, "val": 20, "test": 30, "all": N}
    storage = splits["all"].images.untyped_storage().data_ptr()
    rows = []
    for name in ("train", "val", "test"):
        s = splits[name]
        assert s.images.dtype == torch.uint8 and s.images.shape[1:] == (1, 64, 64)
        assert s.images.untyped_storage().data_ptr() == storage            # a view, not a copy
        grid_rows = factor_grid_index(s.factors.numpy(), SIZES)
        assert np.array_equal(shown_row(s.images), grid_rows)              # each image beside its own factors
        assert torch.equal(s.labels, s.factors[:, 0])
        rows.append(grid_rows)
    assert sorted(np.concatenate(rows)) == list(range(N))                  # disjoint, and the whole grid
    held_out = torch.cat([splits["val"].labels, splits["test"].labels])
    assert len(held_out.unique()) == 3                                     # random rows, not the grid's tail
    assert not (data_dir / "unpickled").exists()                           # metadata never unpickled
    # images_from_factors finds any combination, wherever the split moved it.
    data.setup()
    sampled = data.sample_factors(25, np.random.default_rng(1))
    images = data.images_from_factors(sampled)
    assert images.dtype == torch.float32 and images.shape == (25, 1, 64, 64)
    assert np.array_equal(shown_row(images), factor_grid_index(sampled, SIZES))
    # The held-out images depend on split_seed only; a training subset is drawn at random.
    again, other = datamodule(data_dir, md5).load_splits(), datamodule(data_dir, md5, split_seed=1).load_splits()
    assert torch.equal(again["val"].factors, splits["val"].factors)
    assert not torch.equal(other["val"].factors, splits["val"].factors)
    subset = datamodule(data_dir, md5, train_subset=40).split("train")
    assert len(subset) == 40 and len(subset.labels.unique()) == 3         # not the first 40 of the grid


def test_a_file_that_does_not_match_the_md5_is_refused_in_one_line(small):
    data_dir, md5 = small
    # The published MD5 (the default) cannot match a test file: the same check refuses it.
    with pytest.raises(DataError, match=rf"{FILE_NAME} is corrupt \(MD5 {md5}, expected {MD5}\); delete it"):
        datamodule(data_dir, MD5).check_config()
    with pytest.raises(DataError, match="is corrupt"):
        datamodule(data_dir, MD5).load_splits()
    # A file whose MD5 is accepted but whose rows are not the grid in row-major order is refused too.
    path = data_dir / "dsprites" / FILE_NAME
    with np.load(path, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in ("imgs", "latents_classes")}
    np.savez_compressed(path, imgs=arrays["imgs"][::-1], latents_classes=arrays["latents_classes"][::-1])
    reordered = hashlib.md5(path.read_bytes()).hexdigest()
    with pytest.raises(DataError, match=r"does not hold the 3 × 2 × 2 × 4 × 4 grid of 64×64 images in row-major"):
        datamodule(data_dir, reordered).load_splits()


def test_offline_it_says_where_to_put_the_file_and_writes_nothing(tmp_path):
    data = datamodule(tmp_path / "data", MD5, url=CLOSED_PORT_URL, download=True)
    data.check_config()                                     # missing, but a download may still work
    with pytest.raises(DataError) as error:
        data.prepare_data()
    line = str(error.value)
    assert line.startswith(f"dSprites is not in {tmp_path}/data/dsprites and was not downloaded (URLError")
    assert f"curl -L --create-dirs -o {tmp_path}/data/dsprites/{FILE_NAME} {CLOSED_PORT_URL}" in line
    assert "\n" not in line and not (tmp_path / "data").exists()
    with pytest.raises(DataError, match=r"not downloaded \(data.download=false\)"):
        datamodule(tmp_path / "data", MD5, download=False).check_config()


@pytest.fixture
def server(tmp_path):
    """A real HTTP server on localhost serving tmp_path/served."""
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()


def test_the_download_is_saved_only_when_its_md5_matches(tmp_path, small, server):
    source, md5 = small
    root, address = server
    (root / FILE_NAME).write_bytes((source / "dsprites" / FILE_NAME).read_bytes())
    (root / "damaged.npz").write_bytes((source / "dsprites" / FILE_NAME).read_bytes()[:-100])
    damaged = datamodule(tmp_path / "new", md5, url=f"{address}/damaged.npz", download=True)
    with pytest.raises(DataError, match=f"has MD5 .*, expected {md5}; nothing was saved"):
        damaged.prepare_data()
    assert not (tmp_path / "new").exists()
    fetched = datamodule(tmp_path / "new", md5, url=f"{address}/{FILE_NAME}", download=True)
    assert not fetched.files_ready()
    fetched.prepare_data()
    assert fetched.files_ready() and len(fetched.load_splits()["train"]) == N - 50


@pytest.mark.parametrize("overrides, expected", [
    (["data.batch_size=200"], "data.batch_size=200 is larger than the 142 training images"),
    (["data.test_size=180"], "data.val_size=20 + data.test_size=180 leave none of the 192 images for training"),
    (["data.factor_sizes=[3,2,2,4]"], "data.factor_sizes=[3, 2, 2, 4] is invalid; it must be 5 integers ≥ 1"),
])
def test_a_bad_setting_is_one_line_before_anything_is_written(make_cfg, tmp_path, small, overrides, expected):
    data_dir, md5 = small
    cfg = make_cfg("data=dsprites", f"+data.md5={md5}", "+data.factor_sizes=[3,2,2,4,4]", "data.val_size=20",
                   "data.test_size=30", *overrides, output_dir=tmp_path / "run")
    cfg.data.data_dir = str(data_dir)
    with pytest.raises(ConfigError) as error:
        preflight(cfg)
    assert expected in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("model", ["mlp", "conv"])
def test_both_models_train_on_dsprites_and_draw_figures_at_64x64(make_cfg, tmp_path, small, model):
    data_dir, md5 = small
    cfg = make_cfg("data=dsprites", f"model={model}", f"+data.md5={md5}", "+data.factor_sizes=[3,2,2,4,4]",
                   "data.val_size=32", "data.test_size=32", "data.batch_size=16", "latent_size=2",
                   "trainer.max_steps=20", "trainer.val_check_interval=10", "eval.iwae_samples=2", "logger=csv",
                   *SMALL_METRICS, output_dir=tmp_path / "run")
    cfg.data.data_dir = str(data_dir)
    metrics = train(cfg)
    record = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert record["status"] == "completed" and record["params"]["data"] == "dsprites" and metrics["steps"] == 20
    assert 0 < metrics["test/neg_elbo"] < 4096 * np.log(2)              # below a coin per pixel
    images = tmp_path / "run" / "images"
    # make_grid pads 2 px: 8 inputs over their 8 reconstructions are 8·66+2 wide, 2·66+2 high.
    assert png_size(images / "reconstructions.png") == (134, 530)
    assert png_size(images / "traversal_grid.png") == (11 * 66 + 2, 11 * 66 + 2)
    assert (images / "latent_scatter.png").exists()


@pytest.mark.slow
def test_the_command_line_says_one_line_for_a_missing_or_corrupt_file(tmp_path):
    offline = run_cli("data=dsprites", f"data.data_dir={tmp_path}/offline", f"+data.url={CLOSED_PORT_URL}",
                      f"hydra.run.dir={tmp_path}/run1")
    lines = offline.stderr.strip().splitlines()
    assert offline.returncode == 2 and len(lines) == 1, offline.stderr[-2000:]
    assert lines[0].startswith(f"error: dSprites is not in {tmp_path}/offline/dsprites and was not downloaded")
    assert not (tmp_path / "offline").exists()                          # no folder, no partial file
    assert not (tmp_path / "run1" / "metrics.json").exists()            # (Hydra's own .hydra/ is there)
    corrupt = tmp_path / "corrupt" / "dsprites" / FILE_NAME
    corrupt.parent.mkdir(parents=True)
    corrupt.write_bytes(b"PK\x03\x04 not the real file")
    result = run_cli("data=dsprites", f"data.data_dir={tmp_path}/corrupt", f"hydra.run.dir={tmp_path}/run2")
    found = hashlib.md5(corrupt.read_bytes()).hexdigest()
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        f"error: {corrupt} is corrupt (MD5 {found}, expected {MD5}); delete it and run again to download it, "
        f"or fetch https://raw.githubusercontent.com/google-deepmind/dsprites-dataset/master/{FILE_NAME}"]
    assert not (tmp_path / "run2").exists()                              # refused before the run's folder
