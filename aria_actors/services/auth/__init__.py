"""aria_auth: macaroon tokens, users, roles, MFA and service-to-service auth."""
