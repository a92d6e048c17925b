"""The library's errors a user can fix (see protocol/errors.py for the shared base classes)."""

from protocol.errors import ConfigError, UserError

__all__ = ["ConfigError", "ContractError", "DataError", "DivergedError", "UserError"]


class DataError(UserError):
    """The dataset is missing, corrupt, or cannot be written where the config says."""


class DivergedError(UserError):
    """Training produced a non-finite loss; the run stopped itself."""


class ContractError(UserError):
    """A dataset or model module breaks the contract it declares (vae/contract_checks.py)."""
