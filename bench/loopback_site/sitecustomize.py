"""Installs bench/loopback_guard.py in every Python process started with this folder on
PYTHONPATH and ECG_LOOPBACK_LOG set (tests, drills and their subprocesses, Ray workers)."""

import importlib.util
import os
import sys
from pathlib import Path

if os.environ.get("ECG_LOOPBACK_LOG"):
    _path = Path(__file__).resolve().parent.parent / "loopback_guard.py"
    _spec = importlib.util.spec_from_file_location("ecg_loopback_guard", _path)
    _guard = importlib.util.module_from_spec(_spec)
    sys.modules["ecg_loopback_guard"] = _guard
    _spec.loader.exec_module(_guard)
    _guard.install(log_path=os.environ["ECG_LOOPBACK_LOG"])
