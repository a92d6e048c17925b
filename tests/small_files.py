"""Small files in the layout of each dataset option that fetches its own files, for the tests of
every option (tests/test_options.py): option name -> a writer that puts such files into a folder
and returns the overrides that read them. A dataset that needs no files needs no entry."""

from pathlib import Path

from test_dsprites import SIZES, write_small_dsprites


def dsprites(folder: Path) -> list[str]:
    _, md5 = write_small_dsprites(folder)
    return [f"+data.md5={md5}", f"+data.factor_sizes=[{','.join(map(str, SIZES))}]", "data.val_size=20",
            "data.test_size=30", "data.batch_size=16", "data.download=false"]


WRITERS = {"dsprites": dsprites}
