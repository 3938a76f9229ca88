"""Make the tools in tests/ (build_labs, execute_notebooks) importable by the tests."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
