"""Generated wire code for fedcredit (see proto/fedcredit/v1/*.proto)."""
