"""benchmarks/criteria_grid.py (issue 28 item 1) on hand-made rows: the grid's units, the paired comparisons that
answer its three questions, and the page that says how complete it is."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from benchmarks import criteria_grid as cg


def test_the_grid_has_every_cell_and_pruning_at_init_criteria_only_at_init():
    units = cg.units([0, 1], 4)
    crits = cg.criteria()
    assert {"snip", "grasp", "synflow", "large_final", "random"} <= set(crits)
    per_seed = 2 * (len(cg.AT_INIT) + (len(crits) - len(cg.AT_INIT)) * (len(cg.STOPS) + 1))  # + iterative at end
    assert len(units) == 2 * per_seed
    assert {u["stop_at"] for u in units if u["criterion"] in cg.AT_INIT} == {"0"}
    assert {u["schedule"] for u in units if u["stop_at"] != "end"} == {"one_shot"}
    assert [u["seed"] for u in units] == sorted(u["seed"] for u in units)  # seed-major: a partial grid is whole
    assert len({tuple(str(u[k]) for k in cg.KEY) for u in units}) == len(units)


def rows(cells: dict, seeds=(0, 1, 2), sparsity=0.07) -> pd.DataFrame:
    """{(criterion, stop_at, variant): accuracies per seed} -> grid rows."""
    return pd.DataFrame([{"criterion": c, "stop_at": s, "variant": v, "seed": seed, "sparsity": sparsity,
                          "schedule": "one_shot", "epochs": 4.0, "test_acc_at_early_stop": acc,
                          "dense_test_acc_at_early_stop": 0.98}
                         for (c, s, v), accs in cells.items() for seed, acc in zip(seeds, accs, strict=True)])


def test_a_comparison_is_paired_by_seed():
    df = rows({("snip", "0", "original"): (0.950, 0.960, 0.955), ("random", "0", "original"): (0.940, 0.945, 0.950)})
    got = cg.paired(df, {"criterion": "snip", "stop_at": "0", "variant": "original"},
                    {"criterion": "random", "stop_at": "0", "variant": "original"})
    d = 100 * (np.array([0.950, 0.960, 0.955]) - np.array([0.940, 0.945, 0.950]))
    assert got["n"] == 3 and got["diff_pp"] == pytest.approx(d.mean())
    assert got["ci95_pp"] == pytest.approx(stats.t.ppf(0.975, 2) * d.std(ddof=1) / np.sqrt(3))
    assert got["p"] == pytest.approx(stats.ttest_rel([0.950, 0.960, 0.955], [0.940, 0.945, 0.950]).pvalue)
    one = cg.paired(df[df.seed == 0], {"criterion": "snip"}, {"criterion": "random"})
    assert one["n"] == 1 and np.isnan(one["ci95_pp"]) and np.isnan(one["p"])


def test_the_three_questions_compare_the_cells_the_page_names():
    cells = {("large_final", s, "original"): (0.97, 0.971, 0.969) for s in ("0", "100", "500", "2000", "end")}
    cells[("large_final", "0", "original")] = (0.95, 0.952, 0.951)  # masks at init are worse
    cells.update({("snip", "0", v): (0.955, 0.956, 0.954) for v in ("original", *cg.CONTROLS)})
    cells[("random", "0", "original")] = (0.94, 0.941, 0.943)
    cells.update({("large_final", "end", v): (0.96, 0.958, 0.962) for v in cg.CONTROLS})
    ans = cg.answers(rows(cells))
    early = ans[ans.question == "early"].set_index("a")
    assert list(early.index) == ["large_final @ 0", "large_final @ 100", "large_final @ 500", "large_final @ 2000"]
    assert early.loc["large_final @ 0", "diff_pp"] == pytest.approx(-1.9, abs=0.01)
    assert early.loc["large_final @ 2000", "diff_pp"] == pytest.approx(0.0, abs=1e-9)
    pai = ans[ans.question == "pai"].set_index("b")
    assert set(pai.a) == {"snip @ 0"}  # GraSP and SynFlow have no rows here: no comparison, not a zero
    assert pai.loc["random @ 0", "diff_pp"] > 0 > pai.loc["large_final @ end", "diff_pp"]
    sanity = ans[ans.question == "sanity"].set_index("a")
    assert sanity.loc["snip @ 0: reshuffle", "diff_pp"] == pytest.approx(0.0, abs=1e-9)
    assert sanity.loc["large_final @ end: random_reinit", "diff_pp"] == pytest.approx(-1.0, abs=0.01)
    assert ans.q.dropna().between(0, 1).all() and (ans.q.dropna() >= ans.p[ans.q.notna()] - 1e-12).all()


def test_the_page_says_partial_until_every_unit_is_stored_and_carries_the_answers():
    cells = {("large_final", s, v): (0.97, 0.971, 0.969) for s in ("0", "end") for v in ("original", *cg.CONTROLS)}
    page = cg.render(rows(cells), [0, 1, 2], 4.0)
    assert "PARTIAL (" in page and "## Early masks against the end-of-training mask" in page
    assert "| 7.0 | large_final @ 0 | large_final @ end | +0.00 +- 0.00 |" in page


def test_cells_with_equal_masks_in_every_seed_are_one_ticket_and_not_compared():
    cells = {("large_final", s, "original"): (0.97, 0.971, 0.969) for s in ("0", "100", "500", "2000", "end")}
    cells.update({("large_init", s, "original"): (0.95, 0.951, 0.952) for s in ("0", "100", "500", "2000", "end")})
    df = rows(cells)
    digest = {("large_init", s): "init" for s in ("0", "100", "500", "2000", "end")}
    digest[("large_final", "0")] = "init"
    df["mask_digest"] = [f"{digest.get((c, s), f'{c}{s}')}-{seed}"
                         for c, s, seed in zip(df.criterion, df.stop_at, df.seed, strict=True)]
    groups = cg.same_tickets(df)
    assert groups == {0.07: [["large_final @ 0", "large_init @ 0", "large_init @ 100", "large_init @ 500",
                              "large_init @ 2000", "large_init @ end"]]}
    early = cg.answers(df)
    assert set(early.a) == {"large_final @ 0", "large_final @ 100", "large_final @ 500", "large_final @ 2000"}
    # one seed with a different mask: not the same ticket
    df.loc[(df.criterion == "large_init") & (df.stop_at == "end") & (df.seed == 2), "mask_digest"] = "other"
    assert "large_init @ end" not in cg.same_tickets(df)[0.07][0]


def test_the_earliest_stop_is_the_first_from_which_every_early_mask_is_shown_within_the_margin():
    def early(diffs, ci):
        return pd.DataFrame([{"sparsity": 0.07, "a": f"large_final @ {s}", "diff_pp": d, "ci95_pp": ci}
                             for s, d in zip(("0", "100", "500", "2000"), diffs, strict=True)])

    assert cg.MARGIN_PP == 0.5
    got = cg.earliest(early([-2.0, 0.1, -0.5, 0.0], 0.2))
    assert got.iloc[0].stop == "2000"  # 100 is within the margin but 500 after it is not (-0.7 at its low end)
    assert cg.earliest(early([-2.0, -0.1, 0.1, 0.0], 0.2)).iloc[0].stop == "100"
    assert cg.earliest(early([-2.0, -0.1, 0.1, 0.0], 0.45)).iloc[0].stop == "500"  # -0.55: a wide interval fails
    assert cg.earliest(early([-2.0, -1.0, -0.9, -0.5], 0.2)).iloc[0].stop == "end"
    assert cg.earliest(early([-2.0, -1.0, -0.9, -0.5], np.nan)).iloc[0].stop == "-"
