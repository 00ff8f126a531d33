"""The finance domain's plugin (spec: domains/finance/spec.yaml): statement and XBRL line items per period
(`extract`), the filing's own driver sentences (`drivers`), growth / margin / cash findings (`findings`) and the
outlook and risk findings read from its narrative (`narrative`). Importing it registers the "finance" hooks."""

from m3analyst.domains.finance import extract, findings  # noqa: F401 - importing registers the hooks
