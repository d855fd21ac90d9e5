"""Process plumbing shared by the CALL nodes."""
