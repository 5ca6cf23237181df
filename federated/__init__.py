"""fedcredit runtime: transport, coordinator, party nodes, CLI."""
