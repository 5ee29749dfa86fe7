"""The same question from Python, as in a notebook: run from this folder, python notebook.py.

The arrays here are in memory (no registered dataset): nas_lth.search(..., data=...) stores them once under the
storage and every Ray worker reads them from there. The ticket it finds takes raw inputs."""

import numpy as np
import torch
import yaml
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import nas_lth
import nas_lth.export

digits = load_digits()
x = (digits.images * 16).clip(0, 255).astype(np.uint8)[:, None]  # 8x8 grey images, uint8 as a camera gives them
x_train, x_test, y_train, y_test = train_test_split(x, digits.target, test_size=0.2, random_state=0,
                                                    stratify=digits.target)

space = yaml.safe_load(open("space.yaml"))
del space["fixed"]["dataset"]  # data= gives the data
results = nas_lth.search(space, data={"train": (x_train, y_train), "test": (x_test, y_test)}, storage="runs",
                         name="from_python", num_samples=6)
print(results.summary())

best = results.best.iloc[0]
print(f"\nbest: {best.criterion}, {best.rounds} rounds, {100 * best.weights_remaining:.1f} % of the weights, "
      f"validation {best.val_acc:.4f}, test {best.test_acc:.4f}")
model = nas_lth.export.load(results.best_ticket)  # a torch.nn.Module on raw uint8 images, pruned weights zero
with torch.no_grad():
    acc = (model(torch.from_numpy(x_test)).argmax(1).numpy() == y_test).mean()
print(f"the loaded ticket on the raw test images: {acc:.4f}")
