"""An ablation section shows what a method logs about its own work (leaderboard.ABLATION_SHARES), only where its
cells have it: SSD's share of dampened weights per variant."""
import pandas as pd

from mubench.boards.leaderboard import render_ablation, render_board, summarise

from test_board_render import cells_of, parse_tables

SSD_CELLS = {"ssd": {"nomus": (0.6, 0.6), "ssd_dampened_share": (0.001, 0.003)},
             "ssd[fixed-alpha]": {"nomus": (0.5, 0.5), "ssd_dampened_share": (0.0, 0.0)},
             "dlfd": {"nomus": (0.7, 0.7)}, "dlfd[static]": {"nomus": (0.65, 0.65)}}


def test_ssd_section_shows_the_mean_dampened_share_in_percent():
    rows = cells_of(SSD_CELLS)
    ablation = parse_tables(render_ablation(summarise(pd.DataFrame(rows), ("ssd_dampened_share",)), "ssd"))[0]
    assert ablation[0] == ["variant", "test acc", "FS", "NoMUS", "dampened weights", "unlearn s", "seeds"]
    assert [row[0] for row in ablation[1:]] == ["ssd", "ssd[fixed-alpha]"]
    assert [row[4] for row in ablation[1:]] == ["0.2 %", "0 %"]  # mean of 0.1 % and 0.3 %


def test_a_section_whose_cells_lack_the_metric_has_no_such_column():
    rows = cells_of(SSD_CELLS)
    ablation = parse_tables(render_ablation(summarise(pd.DataFrame(rows), ("ssd_dampened_share",)), "dlfd"))[0]
    assert ablation[0] == ["variant", "test acc", "FS", "NoMUS", "unlearn s", "seeds"]
    plain = cells_of({"dlfd": {"nomus": (0.7,)}, "dlfd[static]": {"nomus": (0.6,)}})
    assert parse_tables(render_ablation(summarise(pd.DataFrame(plain)), "dlfd"))[0][0][4] == "unlearn s"


def test_the_board_carries_the_logged_share_into_the_ssd_section():
    text = render_board(("digits", "resnet18", "default"), pd.DataFrame(cells_of(SSD_CELLS)))
    ssd = text[text.index("## Ablation: ssd"):]
    dlfd = text[text.index("## Ablation: dlfd"):text.index("## Ablation: ssd")]
    assert parse_tables(ssd)[0][1][4] == "0.2 %"
    assert "dampened weights" not in dlfd and "dampened weights" not in text[:text.index("## Ablation")]
