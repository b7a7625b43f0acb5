"""What a run produces besides its shards: the report, the card, the Hub."""
