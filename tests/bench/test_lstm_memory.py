"""bench.lstm_memory: the share of an untrained LSTM head's gradient from older steps."""

from __future__ import annotations

from bench.lstm_memory import lstm_presets, main, preset_row


def test_it_measures_every_lstm_preset_and_no_other():
    presets = lstm_presets()
    assert set(presets) >= {"cnn7_lstm16", "cnn7_lstm64", "cnn7_bilstm32", "cnn15_lstm64"}
    assert all(p["cell"] == "lstm" and p["chrono_steps"] > 2 for p in presets.values())


def test_chrono_reaches_further_back_than_a_forget_bias_and_torch_init():
    row = preset_row(lstm_presets()["cnn7_lstm16"], seeds=2, recent=10, batch=4)
    assert 0.0 <= row["torch"] < row["forget bias 1"] < row["chrono (preset)"] <= 1.0
    assert row["torch"] < 0.05 and row["chrono (preset)"] > 0.3


def test_main_prints_one_row_per_lstm_preset(capsys):
    assert main(["--seeds", "1", "--batch", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[2:]] == list(lstm_presets())
