"""`cotlab.experiments.studies` on constructed tables: chapter 6's results split into its two sweeps."""
import pandas as pd

from cotlab.experiments.studies import DATA_SWEEPS, data_sweeps


def test_data_sweeps_give_each_sweep_the_base_its_runs_and_the_run_on_all_the_data():
    rows = [{"algorithm": "base", "sweep": None, "categories": None, "prompts": None, "value": 0.3}]
    rows += [{"algorithm": a, "sweep": sweep, "categories": k, "prompts": n, "value": v}
             for a in ("grpo", "dpo")
             for sweep, k, n, v in (("full", 7, 640, 0.6), ("diversity", 1, 600, 0.4), ("diversity", 3, 640, 0.5),
                                    ("volume", 7, 100, 0.45))]
    results = pd.DataFrame(rows)
    sweeps = data_sweeps(results)
    assert list(sweeps) == list(DATA_SWEEPS) == ["diversity", "volume"]
    diversity, variable = sweeps["diversity"]
    assert variable == "categories"
    assert diversity["sweep"].fillna("base").tolist() == ["base", "full", "diversity", "diversity", "full", "diversity",
                                                          "diversity"]
    assert sorted(diversity.loc[diversity["algorithm"] == "grpo", "categories"]) == [1, 3, 7]
    volume, variable = sweeps["volume"]
    assert variable == "prompts" and (volume["algorithm"] == "base").sum() == 1
    assert set(volume["sweep"].dropna()) == {"full", "volume"} and len(volume) == 5
    # every row of the results lands in some sweep, the base and the full run in both
    assert len(diversity) + len(volume) == len(results) + 1 + 2
