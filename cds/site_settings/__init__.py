"""Site settings (``CDS_SITE_CONFIG``): one hospital's modes, tuned parameters and local codes,
validated and applied once at load (docs/governance.md#site-settings)."""

from cds.site_settings.check import site_problems
from cds.site_settings.effective import effective_values, settle
from cds.site_settings.schema import LocalCode, RuleSetting, SiteFile, ValueSetAddition
from cds.site_settings.site import (
    NO_SITE,
    NO_SITE_DIGEST,
    SiteFileRead,
    SiteSettings,
    read_site_file,
)

__all__ = [
    "NO_SITE",
    "NO_SITE_DIGEST",
    "LocalCode",
    "RuleSetting",
    "SiteFile",
    "SiteFileRead",
    "SiteSettings",
    "ValueSetAddition",
    "effective_values",
    "read_site_file",
    "settle",
    "site_problems",
]
