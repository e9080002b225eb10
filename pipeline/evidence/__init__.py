"""Evidence for legal teams: signed packages (`package`), each capture's hash-chained
custody ledger (`custody`) and the lawyer's summary (`summary`)."""
