"""Local, account-free runtime: the SAM template's resources on moto, with the real handlers."""
