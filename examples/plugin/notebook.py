"""The same question from Python, as in a notebook: run from this folder, python notebook.py."""

import nas_lth
import nas_lth.export

results = nas_lth.search("space.yaml", storage="runs", name="from_python", num_samples=6)
print(results.summary())

best = results.best.iloc[0]
print(f"\nbest: {best.criterion}, {best.rounds} rounds, {100 * best.weights_remaining:.1f} % of the weights, "
      f"validation {best.val_acc:.4f}")
model = nas_lth.export.load(results.best_ticket)  # a torch.nn.Module, pruned weights exactly zero
print(model)
