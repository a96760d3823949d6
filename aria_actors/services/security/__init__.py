"""aria_security: secrets for every other service, their audit log, their rotation."""
