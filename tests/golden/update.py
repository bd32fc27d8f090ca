"""Regenerate weight_paths.json (only after a deliberate, announced rename).

Run from the repository root: ``python -m tests.golden.update``.
"""

import hashlib
import json
import pathlib

from keras_resblocks import create_model, list_models
from tests._helpers import weight_signature

FULL = ["resnet20", "plain20", "resnet18", "resnet50", "resnet50v2", "resnet26d"]

if __name__ == "__main__":
    out = {"sha256": {}, "full": {}}
    for name in list_models():
        model = create_model(name)
        signature = weight_signature(model)
        out["sha256"][name] = hashlib.sha256("\n".join(signature).encode()).hexdigest()
        if name in FULL:
            out["full"][name] = signature
    path = pathlib.Path(__file__).with_name("weight_paths.json")
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}")
