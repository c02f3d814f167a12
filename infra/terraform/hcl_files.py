"""Reading a Terraform directory for the static module checks (test_*_module.py)."""

from __future__ import annotations

import glob
import os

import hcl2


def load(directory):
    """Every block of every ``*.tf`` file in ``directory``, merged by kind (resource, …)."""
    merged: dict = {}
    for path in sorted(glob.glob(os.path.join(directory, "*.tf"))):
        with open(path) as f:
            for kind, items in hcl2.load(f).items():
                merged.setdefault(kind, []).extend(items)
    return merged
