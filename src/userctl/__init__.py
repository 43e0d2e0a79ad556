"""userctl: platform users, roles and payout bank-account assignments managed as code."""

__version__ = "0.1.0"
