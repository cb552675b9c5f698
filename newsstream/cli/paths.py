"""Where a checkout keeps what the commands default to (models/, training/)."""

from pathlib import Path

#: The checkout (editable install): models/ and training/annotations beside the packages.
REPO_ROOT = Path(__file__).resolve().parents[2]
