"""What every command shares: the run-folder contract (status, heartbeat, errors, atomic JSON) and controller entries."""
