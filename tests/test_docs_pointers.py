"""The docs a newcomer follows point at things that exist and keep the "no existing file is edited"
promise: every README section the code points at is a README heading, and the README's "Add a
model" does not send new networks into vae/models/networks.py."""

import re

from vae.config import PROJECT_ROOT

README = (PROJECT_ROOT / "README.md").read_text()
HEADINGS = {line.lstrip("#").strip() for line in README.splitlines() if line.startswith("#")}


def test_every_readme_section_the_code_and_configs_point_at_exists():
    pointers = []
    for path in [*PROJECT_ROOT.glob("vae/**/*.py"), *PROJECT_ROOT.glob("sweeps/**/*.py"),
                 *PROJECT_ROOT.glob("conf/**/*.yaml")]:
        pointers += [(path.name, name) for name in re.findall(r'README,? "([^"]+)"', path.read_text())]
    assert pointers                                        # the pattern still finds them
    # a pointer may give a heading's start ("Add a model" for "Add a model: one module and one YAML")
    assert [(where, name) for where, name in pointers if not any(h.startswith(name) for h in HEADINGS)] == []


def test_add_a_model_keeps_new_networks_out_of_existing_files():
    section = README.split("### Add a model")[1].split("\n## ")[0]
    assert "go in a module of your own" in section
    assert not re.search(r"go in `vae/models/networks\.py`", section)
    assert "pytest tests/test_options.py -k" in section and "pytest tests/test_options.py -k" in \
        README.split("### Add a dataset")[1].split("### Add a model")[0]
