"""Services: what handlers call to change the world (outbound queue, log, tickets, notices)."""
