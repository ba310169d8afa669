"""The README stays true: every setting is documented with its real default, and its links exist."""

import re
from pathlib import Path

from consumer.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_in_the_configuration_table_with_its_default():
    rows = {
        m[0]: m[1] for m in re.findall(r"^\| `(SENTIMENT_[A-Z_]+)` \| ([^|]+) \|", README, re.M)
    }
    for name, field in Settings.model_fields.items():
        var = "SENTIMENT_" + name.upper()
        assert var in rows, f"{var} is missing from the README's configuration table"
        default = field.default
        if (
            isinstance(default, (int, float, str))
            and not isinstance(default, bool)
            and default != ""
        ):
            shown = rows[var].strip().strip("`")
            assert shown == str(default).removesuffix(".0"), (var, shown, default)
    assert set(rows) <= {"SENTIMENT_" + n.upper() for n in Settings.model_fields}


def test_relative_links_point_at_files_that_exist():
    for target in re.findall(r"\]\(([^)#:]+)\)", README):
        assert (ROOT / target).exists(), target
