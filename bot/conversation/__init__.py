"""The conversation engine: leases, FIFO drain, pure flows, one transaction per transition."""
