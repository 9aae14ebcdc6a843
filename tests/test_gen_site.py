"""bench/gen_site.py writes large blueprints that validate (the scale benchmarks depend on it)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from umhctl import api

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("gen_site", ROOT / "bench" / "gen_site.py")
assert _spec is not None and _spec.loader is not None
gen_site = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen_site)


def test_the_500_device_site_validates_with_the_documented_shape(tmp_path: Path) -> None:
    result = api.validate(gen_site.write_site(500, tmp_path))
    assert result.ok, [d.message for d in result.diagnostics[:5]]
    assert result.counts == {"devices": 500, "io_link_masters": 490, "sensors": 1950, "dashboards": 0}
    assert not result.diagnostics


def test_small_sites_validate_too(tmp_path: Path) -> None:
    for count in (2, 30, 51):
        result = api.validate(gen_site.write_site(count, tmp_path / str(count)))
        assert result.ok, (count, [d.message for d in result.diagnostics[:5]])
        assert result.counts["devices"] == count
