"""Sans-I/O provider adapters (no sockets, no clocks, no await) and providers/fakes/ (fake servers)."""
