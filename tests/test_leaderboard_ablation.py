"""An ablation section shows what a method logs about its own work (leaderboard.ABLATION_SHARES), only where its
cells have it: SSD's share of dampened weights per variant; each row's test acc against the Original's, paired over
seeds, and for a method that logs a share, which rows keep the Original's test accuracy within measurement noise."""
import pandas as pd

from mubench.boards.leaderboard import render_ablation, render_board, summarise

from test_board_render import cell, cells_of, parse_tables

SSD_CELLS = {"ssd": {"nomus": (0.6, 0.6), "ssd_dampened_share": (0.001, 0.003)},
             "ssd[fixed-alpha]": {"nomus": (0.5, 0.5), "ssd_dampened_share": (0.0, 0.0)},
             "dlfd": {"nomus": (0.7, 0.7)}, "dlfd[static]": {"nomus": (0.65, 0.65)}}


def test_ssd_section_shows_the_mean_dampened_share_in_percent():
    rows = cells_of(SSD_CELLS)
    frame = pd.DataFrame(rows)
    ablation = parse_tables(render_ablation(summarise(frame, ("ssd_dampened_share",)), "ssd"))[0]
    assert ablation[0] == ["variant", "test acc", "Δ test acc vs original", "FS", "NoMUS", "dampened weights",
                           "unlearn s", "seeds"]
    assert [row[0] for row in ablation[1:]] == ["ssd", "ssd[fixed-alpha]"]
    assert [row[5] for row in ablation[1:]] == ["0.2 %", "0 %"]  # mean of 0.1 % and 0.3 %


def test_a_section_whose_cells_lack_the_metric_has_no_such_column():
    rows = cells_of(SSD_CELLS)
    frame = pd.DataFrame(rows)
    section = render_ablation(summarise(frame, ("ssd_dampened_share",)), "dlfd")
    assert parse_tables(section)[0][0] == ["variant", "test acc", "Δ test acc vs original", "FS", "NoMUS",
                                           "unlearn s", "seeds"]
    assert "measurement noise" not in section  # said only of a method that logs a share (what it selects)
    plain = pd.DataFrame(cells_of({"dlfd": {"nomus": (0.7,)}, "dlfd[static]": {"nomus": (0.6,)}}))
    assert parse_tables(render_ablation(summarise(plain), "dlfd"))[0][0][5] == "unlearn s"


def test_the_board_carries_the_logged_share_into_the_ssd_section():
    text = render_board(("digits", "resnet18", "default"), pd.DataFrame(cells_of(SSD_CELLS)))
    ssd = text[text.index("## Ablation: ssd"):]
    dlfd = text[text.index("## Ablation: dlfd"):text.index("## Ablation: ssd")]
    assert parse_tables(ssd)[0][1][5] == "0.2 %"
    assert "dampened weights" not in dlfd and "dampened weights" not in text[:text.index("## Ablation")]


def test_the_section_pairs_test_acc_with_the_originals_and_says_which_rows_stay_within_its_measurement_noise():
    spec = {"original": {"test_acc": (0.76, 0.76)},
            "ssd": {"test_acc": (0.70, 0.70), "ssd_dampened_share": (0.02, 0.02)},
            "ssd[fixed-alpha]": {"test_acc": (0.75, 0.77), "ssd_dampened_share": (0.0, 0.0)}}
    rows = cells_of(spec, test_count=360) + [
        cell("ssd tuned", seed, test_acc=0.74, ssd_dampened_share=0.01, test_count=360, method="ssd",
             base="ssd tuned") for seed in (0, 1)]
    frame = pd.DataFrame(rows)
    section = render_ablation(summarise(frame, ("ssd_dampened_share",)), "ssd")
    table = parse_tables(section)[0]
    assert [row[0] for row in table[1:]] == ["ssd", "ssd tuned", "ssd[fixed-alpha]"]  # the method's tuned row too
    # paired per seed: -0.06 twice; -0.02 twice; -0.01 and +0.01 (half-width t(0.975, 1)·0.01414/√2 = 0.127)
    assert [row[2] for row in table[1:]] == ["-0.060 ± 0.000", "-0.020 ± 0.000", "0.000 ± 0.127"]
    # two readings of 360 images at p = 0.76 differ by under 1.96·√(2·0.76·0.24/360/2) = 0.044 on 2 seeds
    assert "under 0.044 on 2 seeds" in section
    assert section.endswith("): ssd tuned, ssd[fixed-alpha]; beyond it: ssd.")
