"""The generated messages and stubs match proto/ (generate.py --check regenerates and compares)."""
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


def test_generated_code_is_up_to_date() -> None:
    done = subprocess.run([sys.executable, "generate.py", "--check"], cwd=HERE, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
