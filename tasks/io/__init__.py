"""Reading inputs and writing the dataset: ingest, atomic shards, the index."""
