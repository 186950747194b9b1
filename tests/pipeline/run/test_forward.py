"""The shared forward pass: a CPU batch run in pieces gives the logits of the whole batch."""

import pytest
import torch

from models import build_model
from models.layouts import LAYOUTS, Skeleton
from pipeline.run.forward import LSTM_MIN_ROWS, PIECE_ROWS, clip_logits, piece_rows


def test_piece_rows_follow_the_frames_per_row():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert piece_rows(torch.zeros(320, 32, 17, 3), cpu) == 32
    assert piece_rows(torch.zeros(320, 2, 32, 25, 3), cpu) == 16  # two persons: twice the frames
    assert piece_rows(torch.zeros(320, 300, 17, 3), cpu) == 3
    assert piece_rows(torch.zeros(320, 2, 600, 17, 3), cpu) == PIECE_ROWS[0]
    assert piece_rows(torch.zeros(320, 300, 17, 3), cpu, LSTM_MIN_ROWS) == LSTM_MIN_ROWS
    assert piece_rows(torch.zeros(320, 4, 17, 3), cpu) == PIECE_ROWS[1]
    assert piece_rows(torch.zeros(320, 32, 17, 3), cuda) == 320  # a GPU takes the batch whole


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("persons", [1, 2])
def test_pieces_give_the_whole_batchs_logits(precision, persons):
    torch.manual_seed(0)
    skeleton = Skeleton(LAYOUTS["ntu25"], 3, False, persons)
    model = build_model("stgcnpp", 5, skeleton=skeleton).eval()
    shape = (48, persons, 32, 25, 3) if persons == 2 else (48, 32, 25, 3)
    x, lengths = torch.randn(shape), torch.randint(8, 33, (48,))
    assert piece_rows(x, torch.device("cpu")) < len(x)  # run in several pieces
    got = clip_logits(model, x, lengths, 3, precision=precision)  # (16, 3, 5)
    with torch.no_grad(), torch.autocast("cpu", torch.bfloat16, enabled=precision == "bf16"):
        whole = model(x, lengths).float().reshape(16, 3, 5)
    tol = 1e-5 if precision == "fp32" else 2e-2
    torch.testing.assert_close(got, whole, rtol=tol, atol=tol)
