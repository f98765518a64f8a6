"""Private keys on disk and the public key registry: create, rotate, revoke, sign.

Private keys are Ed25519, stored as encrypted PKCS#8 PEM files (mode 0600)
inside the instance's ``keys/`` folder. The passphrase comes from
``CUSTODY_PASSPHRASE`` or an interactive prompt; it is never a command-line
argument and is never logged.
"""
